"""Expiry: lots past their expiry lose what they still hold (an `expire` entry each), customer by customer
under their account's row lock. The clock is injected (`create_app(settings, clock=...)`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from lifecycle_shared.runtime import ServiceRuntime
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_loyalty.db import lots, rulesets
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


def expiry_worker(*, clock: Callable[[], datetime], every_s: float):
    async def expiry(runtime: ServiceRuntime) -> None:
        while True:
            if await expire_once(runtime.engine, now=clock()) < BATCH:
                await asyncio.sleep(every_s)

    return expiry
