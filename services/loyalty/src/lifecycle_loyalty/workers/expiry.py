"""Expiry: lots past their expiry lose what they still hold (an `expire` entry each), customer by customer
under their account's row lock; lots expiring within `expiry.warn_days` are announced once
(`loyalty.points_expiring`). The clock is injected (`create_app(settings, clock=...)`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from lifecycle_shared.db import add_to_outbox
from lifecycle_shared.runtime import ServiceRuntime
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_loyalty.db import lots, rulesets
from lifecycle_loyalty.domain.announcements import points_expiring
from lifecycle_loyalty.domain.lots import expire

BATCH = 500


async def expire_once(engine: AsyncEngine, *, now: datetime, rule_version: str | None = None,
                      limit: int = BATCH) -> int:
    """Expire what is due at `now` for up to `limit` customers; returns how many customers it looked at.
    The entries name the rule set in force's version unless `rule_version` is given."""
    async with engine.begin() as conn:
        customers = await lots.expiring_customers(conn, now=now, limit=limit)
        if customers and rule_version is None:
            rule_version = (await rulesets.in_force(conn)).version
        held = await lots.lock(conn, customers)
        for customer in customers:
            await lots.record(conn, held[customer], expire(held[customer], now=now, rule_version=rule_version or ""))
    return len(customers)


async def warn_once(engine: AsyncEngine, *, now: datetime, topic: str, limit: int = BATCH) -> int:
    """Announce the lots expiring within the rule set's `expiry.warn_days` (once each, in batches per
    customer); returns how many lots."""
    async with engine.begin() as conn:
        days = (await rulesets.in_force(conn)).expiry.warn_days
        if not days:
            return 0
        due = await lots.warn_expiring(conn, now=now, until=now + timedelta(days=days), limit=limit)
        await add_to_outbox(conn, points_expiring(due, topic=topic, at=now))
    return sum(len(held) for held in due.values())


def expiry_worker(*, clock: Callable[[], datetime], every_s: float):
    async def expiry(runtime: ServiceRuntime) -> None:
        while True:
            now = clock()
            expired = await expire_once(runtime.engine, now=now)
            warned = await warn_once(runtime.engine, now=now, topic=runtime.settings.kafka.topics.loyalty_events)
            if expired < BATCH and warned < BATCH:
                await asyncio.sleep(every_s)

    return expiry
