"""Expiry: lots past their expiry lose what they still hold (an `expire` entry each), customer by customer
under their account's row lock; lots expiring within `expiry.warn_days` are announced once
(`loyalty.points_expiring`); tiers lost as the window slides are announced (`loyalty.tier_changed`).
The clock is injected (`create_app(settings, clock=...)`)."""

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
from lifecycle_loyalty.tiers import announce_tiers

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
        await lots.record_all(conn, [(held[customer], expire(held[customer], now=now, rule_version=rule_version or ""))
                                     for customer in customers])
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


async def sweep_tiers(engine: AsyncEngine, *, now: datetime, topic: str, batch: int = BATCH) -> int:
    """Tiers lost as the window slides (after their grace period): every customer announced above the lowest
    tier, rechecked at `now`, page by page; returns how many changed."""
    changed, after = 0, ""
    while True:
        async with engine.begin() as conn:
            page = await lots.holders_of_tiers(conn, after=after, limit=batch)
            if not page:
                return changed
            rules = await rulesets.in_force(conn)
            emitted = await announce_tiers(conn, page, at=now, rules=rules, cause=f"sweep:{now.isoformat()}",
                                           topic=topic)
            await add_to_outbox(conn, emitted)
        changed, after = changed + len(emitted), page[-1]


def expiry_worker(*, clock: Callable[[], datetime], every_s: float):
    async def expiry(runtime: ServiceRuntime) -> None:
        while True:
            now = clock()
            expired = await expire_once(runtime.engine, now=now)
            topic = runtime.settings.kafka.topics.loyalty_events
            warned = await warn_once(runtime.engine, now=now, topic=topic)
            await sweep_tiers(runtime.engine, now=now, topic=topic)
            if expired < BATCH and warned < BATCH:
                await asyncio.sleep(every_s)

    return expiry
