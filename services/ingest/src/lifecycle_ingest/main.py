"""The ingest app: `create_app(settings)`; nothing connects at import time."""

from __future__ import annotations

from fastapi import FastAPI
from lifecycle_shared.http import create_service_app
from lifecycle_shared.runtime import ServiceRuntime

from lifecycle_ingest.api.cors import BrowserCors
from lifecycle_ingest.api.deps import WRITE_KEY_SCHEME, WRITE_KEY_SECURITY_SCHEME
from lifecycle_ingest.api.lane import EventLane
from lifecycle_ingest.api.overload import InflightLimit
from lifecycle_ingest.api.routes import admin, events
from lifecycle_ingest.keys import KeyStore
from lifecycle_ingest.publisher import TouchpointPublisher
from lifecycle_ingest.ratelimit import RateLimiter
from lifecycle_ingest.settings import IngestSettings


def create_app(settings: IngestSettings) -> FastAPI:
    async def on_started(app: FastAPI, runtime: ServiceRuntime) -> None:
        app.state.publisher = TouchpointPublisher(
            producer=runtime.producer, topic=settings.kafka.topics.touchpoints,
            timeout_s=settings.publish_timeout_s, max_inflight=settings.max_inflight_events,
            topics_ready=lambda: runtime.topics.healthy)
        keys = KeyStore(engine=runtime.engine, refresh_s=settings.key_refresh_s)
        await keys.start()
        app.state.keys = keys
        runtime.add_check("keys", lambda: keys.loaded)

    async def on_stopping(app: FastAPI) -> None:
        keys: KeyStore | None = getattr(app.state, "keys", None)
        if keys is not None:
            await keys.stop()

    app = create_service_app(
        title="Lifecycle ingest", settings=settings,
        # Ready when the event path is: the broker reachable and the keys loaded at least once (a key cache
        # gone stale while PostgreSQL is away still authenticates; the keys say so in their docstring).
        build_runtime=lambda: ServiceRuntime(service="ingest", settings=settings, api_needs=("broker", "topics")),
        routers=[events.router, admin.router], on_started=on_started, on_stopping=on_stopping,
        security_schemes={WRITE_KEY_SCHEME: WRITE_KEY_SECURITY_SCHEME}, middlewares=[EventLane, BrowserCors],
    )
    app.state.rate_limiter = RateLimiter(rate=settings.rate_limit_events_per_s, burst=settings.rate_limit_burst)
    app.state.inflight = InflightLimit(limit=settings.max_inflight_requests)
    return app
