"""Helpers for the stage engine's tests: the service in-process with its tokens, the real runner and handlers
without Kafka, the sweeper and replay jobs, and reads of what was stored and announced (real PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from lifecycle_devstack.services import StackConfig
from lifecycle_ingest.publisher import to_cloud_event
from lifecycle_shared.db import outbox
from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Typed
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.topics import Topics
from lifecycle_stage_engine.db import reads
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES, RuleSet
from lifecycle_stage_engine.handlers import routes
from lifecycle_stage_engine.handlers.touchpoints import handle_touchpoints
from lifecycle_stage_engine.workers import replays
from sqlalchemy import select

from tests.support.in_process import kafka_settings, running
from tests.support.kafka_records import record

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
API = "review-api-token-5b1e0c7d2a9f4e36"
ADMIN = "review-admin-token-8c2d4f6a1b3e5d70"


def _h() -> str:
    return uuid.uuid4().hex[:10]


def ev(kind: str, at: datetime, *, event: str | None = None, mid: str | None = None, **fields):
    data = TouchpointData(type=kind, event=event, messageId=mid or str(uuid.uuid4()), timestamp=at, receivedAt=at,
                          **fields)
    return to_cloud_event(data, source="tests")


def order(at: datetime, order_id: str, **ids):
    return ev("track", at, event="Order Completed", properties={"order_id": order_id, "revenue": 10}, **ids)


async def deliver(namespace, engine, events, *, now: datetime, rules: RuleSet = DEFAULT_RULES) -> None:
    """One polled batch through the real runner (inbox, handler, outbox; one transaction)."""
    route = routes(topics=Topics(namespace.topic_prefix), rules=lambda: rules, clock=lambda: now)
    runner = ConsumerRunner(name="review", consumer=None, producer=None, engine=engine, route=route)
    await runner.process([record("touchpoints", i, e.to_bytes(), key=(e.subject or "k").encode())
                          for i, e in enumerate(events)])


async def handle_directly(namespace, engine, events, *, now: datetime, rules: RuleSet = DEFAULT_RULES):
    """The handler on one batch in one transaction, without the runner's one-by-one fallback."""
    typed = [Typed(event=e, data=TouchpointData.model_validate(e.data)) for e in events]
    async with engine.begin() as conn:
        return await handle_touchpoints(conn, typed, topic=Topics(namespace.topic_prefix).stage_transitions,
                                        rules=lambda: rules, clock=lambda: now)


async def history(engine, customer: str) -> list[dict]:
    async with engine.connect() as conn:
        profile, _ = await reads.find_profile(conn, customer_id=customer)
        return await reads.history_of(conn, profile_id=profile.id)


async def profile_of(engine, customer: str):
    async with engine.connect() as conn:
        return (await reads.find_profile(conn, customer_id=customer))[0]


async def announced(engine, topic: str, keys: list[str]) -> list[dict]:
    """Every event the outbox holds for these keys, in outbox order (no relay runs here)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.event_id, outbox.c.key, outbox.c.payload)
                                   .where(outbox.c.topic == topic, outbox.c.key.in_(keys))
                                   .order_by(outbox.c.id))).all()
    return [{"id": r.event_id, "key": r.key, **json.loads(r.payload)} for r in rows]


async def run_jobs(engine, topic: str, now: datetime) -> None:
    while await replays.run_page(engine, topic=topic, now=now):
        pass


@asynccontextmanager
async def stage_engine_client(config: StackConfig, *, api_token: str, admin_token: str, sends: str,
                              clock: Callable[[], datetime] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The stage engine in-process with both tokens configured; the client sends `sends` as its Bearer token.
    `clock`: the service's now (a test whose data ends at a fixed moment passes that moment)."""
    from lifecycle_devstack.services import BY_NAME
    from lifecycle_stage_engine.main import create_app
    from lifecycle_stage_engine.settings import StageEngineSettings

    settings = StageEngineSettings(database_url=config.database_url(BY_NAME["stage-engine"]),
                                   kafka=kafka_settings(config), api_tokens=api_token, admin_token=admin_token)
    app = create_app(settings) if clock is None else create_app(settings, clock=clock)
    async with running(app) as client:
        client.headers["authorization"] = f"Bearer {sends}"
        yield client
