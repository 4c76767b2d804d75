"""Loyalty's consumed events built by hand, and a runner that applies them to loyalty's database."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from lifecycle_devstack.services import BY_NAME
from lifecycle_loyalty.handlers import routes
from lifecycle_loyalty.settings import LoyaltySettings
from lifecycle_shared.events import (
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    CloudEvent,
    IdentityMergedData,
    StageChangedData,
    TouchpointData,
)
from lifecycle_shared.kafka.runner import ConsumerRunner

from tests.support.in_process import kafka_settings
from tests.support.kafka_records import record


def loyalty_settings(namespace, **overrides) -> LoyaltySettings:
    """Production settings of loyalty in the test namespace (the API role: no consumers, no workers)."""
    return LoyaltySettings(environment="production", database_url=namespace.database_url(BY_NAME["loyalty"]),
                           kafka=kafka_settings(namespace), role="api", **overrides)


def order_event(customer: str, name: str, order_id: str, *, at: datetime, **properties) -> CloudEvent:
    """A touchpoint.order_completed / order_refunded (`name`) of `customer` with these properties."""
    ids = {"anonymousId": customer} if customer.startswith("anon") else {"userId": customer}
    data = TouchpointData(type="track", event=name.replace("_", " ").title(), messageId=str(uuid.uuid4()),
                          properties={"order_id": order_id, **properties}, timestamp=at, receivedAt=at, **ids)
    return CloudEvent(id=str(uuid.uuid4()), source="/sources/shop", type=f"touchpoint.{name}", time=at,
                      subject=customer, data=data.model_dump(mode="json"))


def stage_event(customer: str, *, at: datetime, to_stage: str = "loyalty", verified: bool = False) -> CloudEvent:
    data = StageChangedData(customer_id=customer, from_stage="consideration", to_stage=to_stage, reason="test",
                            rule_version="v1", cause_event_ids=["x"], event_time=at, processed_at=at,
                            verified=verified)
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=at,
                      subject=customer, data=data.model_dump(mode="json"))


def merged_event(survivor: str, absorbed: str, *, at: datetime) -> CloudEvent:
    data = IdentityMergedData(survivor_id=survivor, absorbed_id=absorbed, absorbed_ids=[absorbed], user_id=survivor,
                              reason="identify", cause_event_ids=["x"], event_time=at, processed_at=at)
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=at,
                      subject=survivor, data=data.model_dump(mode="json"))


async def apply(engine, events: list[CloudEvent], **route_options) -> None:
    """The events through the real runner (inbox, handlers), in this order, one batch."""
    runner = ConsumerRunner(name="loyalty-test", consumer=None, producer=None, engine=engine,
                            route=routes(**route_options))
    await runner.process([record("touchpoints" if e.type.startswith("touchpoint.") else "stage_transitions",
                                 offset, e.to_bytes(), key=e.subject.encode()) for offset, e in enumerate(events)])


async def announced(engine, customer: str) -> list[dict]:
    """The loyalty events written to the outbox for a customer (record key), oldest first, as CloudEvents."""
    from lifecycle_shared.db import outbox
    from sqlalchemy import select

    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.topic, outbox.c.payload).where(outbox.c.key == customer)
                                  .order_by(outbox.c.id))
        return [{"topic": row.topic, **json.loads(row.payload)} for row in rows]


async def ledger_sum_before(engine, at: datetime) -> int:
    """The reference for the finance roll-forward: the sum of every ledger entry that happened before `at`
    (its cause's time, else when it was written), read straight from the table."""
    from lifecycle_loyalty.db.models import ledger_entries
    from sqlalchemy import func, select

    when = func.coalesce(ledger_entries.c.effective_at, ledger_entries.c.created_at)
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.coalesce(func.sum(ledger_entries.c.points), 0))
                                    .where(when < at))).scalar()
    return int(total or 0)
