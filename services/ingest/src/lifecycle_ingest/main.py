"""The ingest app: `create_app(settings)`; nothing connects at import time."""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI
from lifecycle_shared.erasure import pepper_of
from lifecycle_shared.erasure_reports import erasure_route, report_router
from lifecycle_shared.events import ERASURE_REQUESTED_TYPE
from lifecycle_shared.http import create_service_app
from lifecycle_shared.kafka.registry import route_by_type
from lifecycle_shared.keyring import KeyCache
from lifecycle_shared.runtime import ConsumerSpec, ServiceRuntime
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_ingest.api.cors import BrowserCors
from lifecycle_ingest.api.deps import WRITE_KEY_SCHEME, WRITE_KEY_SECURITY_SCHEME
from lifecycle_ingest.api.lane import EventLane
from lifecycle_ingest.api.overload import InflightLimit
from lifecycle_ingest.api.routes import admin, events, subject_keys
from lifecycle_ingest.db import subject_keys as subject_keys_db
from lifecycle_ingest.keys import KeyStore
from lifecycle_ingest.publisher import TouchpointPublisher
from lifecycle_ingest.ratelimit import RateLimiter
from lifecycle_ingest.settings import IngestSettings
from lifecycle_ingest.subject_keys import LocalKeyring


def build_runtime(settings: IngestSettings, cache: KeyCache) -> ServiceRuntime:
    """Ready when the event path is: the broker reachable and the keys loaded at least once (a key cache gone
    stale while PostgreSQL is away still authenticates; the keys say so in their docstring). Its one consumer
    follows erasures (docs/erasure.md: the customer's data keys destroyed) without holding readiness."""

    async def erase(conn: AsyncConnection, erasure_id: str, hashes: list[str], *, pepper: bytes,
                    now: datetime) -> dict[str, int]:
        counts, destroyed = await subject_keys_db.erase(conn, erasure_id, hashes, pepper=pepper, now=now)
        cache.forget(destroyed)
        return counts

    route = route_by_type({ERASURE_REQUESTED_TYPE: erasure_route(erase, pepper_of(settings.erasure_pepper))})
    return ServiceRuntime(service="ingest", settings=settings, api_needs=("broker", "topics"),
                          consumers=(ConsumerSpec(group="ingest", topics=[settings.kafka.topics.stage_transitions],
                                                  route=route, gates_readiness=False),))


def create_app(settings: IngestSettings) -> FastAPI:
    cache = KeyCache(ttl_s=settings.keys_cache_s)

    async def on_started(app: FastAPI, runtime: ServiceRuntime) -> None:
        pepper = pepper_of(settings.erasure_pepper)
        keyring = LocalKeyring(runtime.engine, pepper, cache) if pepper else None
        app.state.publisher = TouchpointPublisher(
            producer=runtime.producer, topic=settings.kafka.topics.touchpoints,
            timeout_s=settings.publish_timeout_s, max_inflight=settings.max_inflight_events,
            topics_ready=lambda: runtime.topics.healthy, seal=keyring.seal if keyring else None)
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
        build_runtime=lambda: build_runtime(settings, cache),
        routers=[events.router, admin.router, subject_keys.router, report_router()],
        on_started=on_started, on_stopping=on_stopping,
        security_schemes={WRITE_KEY_SCHEME: WRITE_KEY_SECURITY_SCHEME}, middlewares=[EventLane, BrowserCors],
    )
    app.state.rate_limiter = RateLimiter(rate=settings.rate_limit_events_per_s, burst=settings.rate_limit_burst)
    app.state.inflight = InflightLimit(limit=settings.max_inflight_requests)
    return app
