"""A customer's tier (their earnings on every id of theirs, through the pure rule: domain.tiers), and the
orders priced with the earn multiplier of the tier held when they completed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import aliases, ledger, lots
from lifecycle_loyalty.domain.announcements import tier_changes
from lifecycle_loyalty.domain.earning import Entry, OrderState, decide_order_entry, order_target
from lifecycle_loyalty.domain.merging import UNKNOWN_TIME
from lifecycle_loyalty.domain.rules import EarnRules
from lifecycle_loyalty.domain.tiers import Earning, TierProgress, multiplier_at, tier_progress


async def tier_of(conn: AsyncConnection, account: str, *, now: datetime, rules: EarnRules) -> TierProgress:
    """`account`: a customer that is no alias (resolved)."""
    return (await tiers_of(conn, [account], now=now, rules=rules))[account]


async def tiers_of(conn: AsyncConnection, accounts: list[str], *, now: datetime,
                   rules: EarnRules) -> dict[str, TierProgress]:
    """`tier_of` each account, in two queries whatever their number."""
    earned = await ledger.tier_earnings_of(conn, await aliases.ids_of(conn, accounts))
    return {account: tier_progress([(at, points) for at, points, _ in earnings], now=now, rule=rules.tiers)
            for account, earnings in sorted(earned.items())}


async def announce_tiers(conn: AsyncConnection, people: list[str], *, at: datetime, rules: EarnRules, cause: str,
                         topic: str) -> Emitted:
    """Each person's tier at `at` against the one last announced: a `loyalty.tier_changed` for each that moved
    (reached, or lost after the grace period), and the new one stored."""
    await lots.lock_accounts(conn, people)  # the accounts' row locks: one announcement of a change
    announced = await lots.announced_tiers(conn, people)
    lowest = rules.tiers.levels[0].name
    now = await tiers_of(conn, people, now=at, rules=rules)
    changed = {p: progress for p, progress in now.items() if progress.tier != (announced[p] or lowest)}
    if changed:
        await lots.set_tiers(conn, {p: None if progress.tier == lowest else progress.tier
                                    for p, progress in changed.items()})
    return tier_changes({p: announced[p] or lowest for p in changed},
                        {p: (progress.tier, progress.points_in_window) for p, progress in changed.items()},
                        rule=rules.tiers, rule_version=rules.version, cause=cause, topic=topic, at=at)


async def announce_credited(conn: AsyncConnection, people: list[str], events: list[Typed[Any]], *, rules: EarnRules,
                            topic: str) -> Emitted:
    """After points other than an order's (a review, a referral, a stage bonus, a merge): the tiers they moved,
    caused by the batch's first event (so a redelivered batch announces nothing new)."""
    if not people:
        return []
    return await announce_tiers(conn, people, at=max(typed.event.time for typed in events), rules=rules,
                                cause=min(typed.event.id for typed in events), topic=topic)


async def decide_orders(conn: AsyncConnection, states: list[OrderState], *, rules: EarnRules) -> list[Entry]:
    """The entries that bring each order to what it should hold, its purchase points multiplied by the earn
    multiplier of the tier its customer held when it completed: from what they earned before it (the orders
    decided here counted as decided, oldest first, so a batch decides as its orders one by one would). An
    earlier order that arrives late does not re-price later orders already applied."""
    if all(level.multiplier == 1 for level in rules.tiers.levels):
        return [entry for state in states if (entry := decide_order_entry(state, rules))]
    people = sorted({state.customer_id for state in states})
    in_batch = {person: frozenset(state.order_id for state in states if state.customer_id == person)
                for person in people}
    earnings = await ledger.tier_earnings_of(conn, await aliases.ids_of(conn, people))
    earned: dict[str, list[Earning]] = {
        person: [(at, points) for at, points, order_id in earnings[person] if order_id not in in_batch[person]]
        for person in people}
    entries = []
    for state in sorted(states, key=lambda s: (s.completed_at is None, s.completed_at or UNKNOWN_TIME, s.order_id)):
        completed_at = state.completed_at
        if completed_at is not None:
            state = replace(state, multiplier=multiplier_at(earned[state.customer_id], at=completed_at,
                                                            rule=rules.tiers))
            earned[state.customer_id].append((completed_at, order_target(state, rules)))
        if entry := decide_order_entry(state, rules):
            entries.append(entry)
    return entries
