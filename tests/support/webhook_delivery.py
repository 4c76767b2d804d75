"""What the webhook delivery tests share (tests/integration/webhooks): the worker's clock the test moves,
endpoints added straight to the database, events as the stage engine and loyalty publish them, and the
`standardwebhooks` library's verdict on what a receiver got."""

from __future__ import annotations

import random
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from lifecycle_messaging.db import webhooks as db
from lifecycle_messaging.domain.webhooks import SECRET_BYTES, new_secret
from lifecycle_messaging.handlers import routes_and_webhooks
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.workers.webhooks import client_for, deliver_round
from lifecycle_shared.events import (
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    CloudEvent,
)
from lifecycle_shared.kafka.runner import ConsumerRunner
from standardwebhooks import Webhook

from tests.support.kafka_records import record
from tests.support.messaging import freshness_at

EVENT_TIME = datetime(2026, 5, 1, tzinfo=UTC)


class Clock:
    """The worker's clock: frozen where the test puts it."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC) + timedelta(seconds=1)  # after the rows the database stamped `now()`

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)



@asynccontextmanager
async def worker_rounds(engine, config: MessagingSettings, clock: Clock, *, draw=random.random):
    """`run_round()`: one round of the delivery worker on the test's clock, with one client for them all."""
    client = client_for(config)
    try:
        yield lambda: deliver_round(engine, client, config, clock=clock, draw=draw)
    finally:
        await client.aclose()


def settings(**overrides) -> MessagingSettings:
    return MessagingSettings(**{"environment": "development", "webhooks_timeout_s": 3.0, **overrides})


async def add_endpoint(engine, url: str, *, event_types=(STAGE_CHANGED_TYPE,), stages=None, status="active",
                       **fields) -> SimpleNamespace:
    secret = new_secret(uuid.uuid4().bytes + uuid.uuid4().bytes[:SECRET_BYTES - 16])
    async with engine.begin() as conn:
        row = await db.add_endpoint(conn, {"id": "ep_" + uuid.uuid4().hex, "url": url, "secret": secret,
                                           "event_types": list(event_types), "stages": stages, "status": status,
                                           **fields})
    return SimpleNamespace(id=row.id, secret=secret)


def stage_change(to_stage: str, *, customer: str | None = None, historical: bool = False,
                 event_id: str | None = None) -> CloudEvent:
    customer = customer or f"c-{uuid.uuid4().hex[:8]}"
    data = {"customer_id": customer, "user_id": customer, "anonymous_ids": [], "from_stage": None,
            "to_stage": to_stage, "reason": "r", "rule_version": "v", "cause_event_ids": ["c"],
            "event_time": EVENT_TIME.isoformat(), "processed_at": EVENT_TIME.isoformat(),
            "traits": {"email": f"{customer}@example.com"}, "historical": historical}
    return CloudEvent(id=event_id or str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE,
                      time=EVENT_TIME, subject=customer, data=data)


def merged(survivor: str, absorbed: str) -> CloudEvent:
    data = {"survivor_id": survivor, "absorbed_id": absorbed, "absorbed_ids": [absorbed], "user_id": survivor,
            "reason": "identify", "cause_event_ids": ["c"], "event_time": EVENT_TIME.isoformat(),
            "processed_at": EVENT_TIME.isoformat()}
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=EVENT_TIME,
                      subject=survivor, data=data)


async def consume(engine, events: list[CloudEvent]) -> None:
    """Through the real runner and messaging's real routes (email handlers included), one polled batch."""
    runner = ConsumerRunner(name="webhooks-test", consumer=None, producer=None, engine=engine,
                            route=routes_and_webhooks(brand="Shop", freshness=freshness_at(EVENT_TIME)))
    await runner.process([record("topic", n, e.to_bytes(), key=e.subject.encode()) for n, e in enumerate(events)])


async def deliveries(engine, endpoint) -> list:
    async with engine.connect() as conn:
        return await db.deliveries_of(conn, endpoint.id)


async def endpoint_row(engine, endpoint):
    async with engine.connect() as conn:
        return await db.endpoint(conn, endpoint.id)


def verify(request, *secrets: str) -> dict:
    """The library's verdict (it checks the timestamp against the wall clock, ±5 minutes) with each secret."""
    bodies = [Webhook(secret).verify(request.body, request.headers) for secret in secrets]
    return bodies[0]


def signed_by(request, secret: str) -> bool:
    """For timestamps a moved clock made: the library's own signature over what was sent is among the header's."""
    stamp = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(request.headers["webhook-id"], stamp, request.body)
    return expected in request.headers["webhook-signature"].split(" ")


def loyalty_event(event_type: str, customer: str, data: dict) -> CloudEvent:
    return CloudEvent(id=str(uuid.uuid4()), source="/loyalty", type=event_type, time=EVENT_TIME, subject=customer,
                      data={"customer_id": customer, **data})

