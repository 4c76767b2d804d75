"""Frequency caps with two delivery workers at once (issue 16): each claims one of a customer's two due marketing
messages in the same instant; the caps are judged under a per-customer lock and count what the other worker let
go, so one is sent and the other waits for the next local day - never both. (Which one: the first worker to take
the customer's lock sends its own; priority orders what one claim holds.) Two `deliver_once` rounds concurrently
on one database (separate connections), real PostgreSQL, a real SMTP server (the session's sink)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_messaging.db import campaigns as campaign_db
from lifecycle_messaging.db.models import messages
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_shared.db import create_engine

from tests.support.messaging import Clock, Shop, messaging_namespace, stage_event, track_event

T0 = datetime(2026, 5, 11, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def namespace(infra) -> StackConfig:
    return messaging_namespace(infra)


@pytest.fixture
async def shop(namespace, mail_sink) -> AsyncIterator[Shop]:
    _, port = mail_sink
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]), pool_size=4)
    settings = MessagingSettings(environment="development", smtp_port=port, holdout_share=0.0, quiet_hours="off",
                                 cap_per_day=1, cap_per_week=0, send_batch_size=1)
    started = Shop(engine, settings, Clock(T0))
    await started.book.start(engine)
    yield started
    async with engine.begin() as conn:
        for campaign in started.book.current():
            if campaign.id.startswith("t-"):
                await campaign_db.delete(conn, campaign.id)
    await engine.dispose()


async def test_two_workers_claiming_one_customers_messages_at_once_send_only_what_the_cap_allows(shop, mail_sink):
    sink, _ = mail_sink
    run = uuid.uuid4().hex[:8]
    event = f"Sale Viewed {run}"
    for priority in (10, 20):
        await shop.campaign(f"t-sale-{priority}-{run}", trigger={"type": "touchpoint", "events": [event]},
                            priority=priority)
    customers = [f"race-{n}-{run}" for n in range(6)]
    shop.clock.now = T0 - timedelta(days=2)  # their welcomes, two days before: spent on another day
    await shop.consume(*(stage_event(c, None, "awareness", shop.clock.now) for c in customers))
    await shop.deliver()
    shop.clock.now = T0
    runtime = SimpleNamespace(engine=shop.engine)
    for customer in customers:
        await shop.consume(track_event(customer, event, T0))
        # Two workers, one message each (batch of one), in the same instant.
        await asyncio.gather(*(deliver_once(runtime, shop.settings, shop.freshness, shop.book) for _ in range(2)))
        log = await shop.log(customer)
        statuses = sorted((log[f"t-sale-{p}-{run}"]["status"], log[f"t-sale-{p}-{run}"]["next_attempt_at"])
                          for p in (10, 20))
        sale = [m for m in sink.to(f"{customer}@example.com") if m["X-Lifecycle-Template"] == "retention_offer"]
        assert len(sale) == 1, (customer, statuses)  # the day's one, never two
        assert statuses[0] == ("queued", datetime(2026, 5, 12, tzinfo=UTC)), statuses  # the other: the next day
        assert statuses[1][0] == "sent"
        async with shop.engine.begin() as conn:  # the deferred one is not due again while the next customer races
            await conn.execute(messages.update().values(next_attempt_at=datetime(2100, 1, 1, tzinfo=UTC))
                               .where(messages.c.customer_id == customer, messages.c.status == "queued"))
