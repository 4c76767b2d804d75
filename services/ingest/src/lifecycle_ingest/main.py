"""The ingest app: `create_app(settings)`; nothing connects at import time."""

from __future__ import annotations

from fastapi import FastAPI
from lifecycle_shared.http import create_service_app
from lifecycle_shared.runtime import ServiceRuntime

from lifecycle_ingest.api.deps import KeyCache
from lifecycle_ingest.api.routes import admin, events
from lifecycle_ingest.publisher import TouchpointPublisher
from lifecycle_ingest.settings import IngestSettings


def create_app(settings: IngestSettings) -> FastAPI:
    def on_started(app: FastAPI, runtime: ServiceRuntime) -> None:
        app.state.key_cache = KeyCache(engine=runtime.engine, ttl_s=settings.key_cache_ttl_s)
        app.state.publisher = TouchpointPublisher(
            producer=runtime.producer, topic=settings.kafka.topics.touchpoints,
            timeout_s=settings.publish_timeout_s, max_inflight=settings.max_inflight_events,
            topics_ready=lambda: runtime.topics.healthy)

    return create_service_app(
        title="Lifecycle ingest", settings=settings,
        build_runtime=lambda: ServiceRuntime(service="ingest", settings=settings),
        routers=[events.router, admin.router], on_started=on_started,
    )
