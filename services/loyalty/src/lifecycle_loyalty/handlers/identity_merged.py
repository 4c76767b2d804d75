"""identity.merged: the absorbed ids become aliases of the survivor, and what they hold moves to it.

Append-only: the absorbed accounts keep their entries, plus one taking each order's points out, and the
survivor gets one putting them in (see domain.merging). What is known of each order moves with it, so a
refund that arrives later, under either id, reverses exactly that order's points on the survivor. Events
that arrived before the merge are moved by it; those that arrive after resolve to the survivor: the
balances do not depend on which came first. Every entry's id derives from the merge event, so a merge
delivered again moves nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from lifecycle_shared.events import IdentityMergedData
from lifecycle_shared.kafka.registry import Emitted, Typed
from lifecycle_shared.topics import LOYALTY_EVENTS
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import aliases, ledger, lots, rulesets
from lifecycle_loyalty.domain.announcements import debts_recorded
from lifecycle_loyalty.domain.earning import EarnRules, Entry
from lifecycle_loyalty.domain.merging import (
    duplicate_bonus_reversals,
    move_debts,
    move_holdings,
    orders_for_survivor,
    scoped_to_merge,
)
from lifecycle_loyalty.tiers import announce_credited, decide_orders


async def handle_identity_merged(conn: AsyncConnection, events: list[Typed[IdentityMergedData]], *,
                                 rules: EarnRules | None = None, topic: str = LOYALTY_EVENTS) -> Emitted:
    """Announces on `topic` the debts a merge records (a refund known on one side of points spent on the other)
    and the survivors' tiers the merged holdings moved."""
    rules = rules or await rulesets.in_force(conn)
    emitted: Emitted = []
    for typed in events:  # one at a time: a merge may absorb the survivor of the one before
        posted = await merge(conn, typed.data, merge_event_id=typed.event.id, rules=rules)
        emitted += debts_recorded(posted, topic=topic, at=typed.data.event_time)
    survivors = await aliases.lock_and_resolve(conn, {typed.data.survivor_id for typed in events})
    return emitted + await announce_credited(conn, sorted(set(survivors.values())), events, rules=rules, topic=topic)


async def merge(conn: AsyncConnection, merged: IdentityMergedData, *, merge_event_id: str,
                rules: EarnRules) -> list[Entry]:
    """The merge's effects; returns the entries it posted against lots (debts included)."""
    named = {merged.survivor_id, merged.absorbed_id, *merged.absorbed_ids}
    survivor = (await aliases.lock_and_resolve(conn, named, exclusive=True))[merged.survivor_id]
    moved = await aliases.absorb(conn, sorted(named - {survivor}), survivor_id=survivor,
                                 merge_event_id=merge_event_id)
    if not moved:
        return []
    posted = await _move_orders(conn, moved, survivor_id=survivor, merge_event_id=merge_event_id, rules=rules,
                                merged_at=merged.event_time)
    held = await ledger.bonus_entries(conn, await aliases.members(conn, [survivor]))
    return posted + await lots.book(conn, duplicate_bonus_reversals(held[survivor], survivor_id=survivor,
                                                                    merge_event_id=merge_event_id),
                                    policy=rules.lots, at=merged.event_time)


async def _move_orders(conn: AsyncConnection, moved: list[str], *, survivor_id: str, merge_event_id: str,
                       rules: EarnRules, merged_at: datetime) -> list[Entry]:
    """Points out of the absorbed accounts and into the survivor's, the orders' facts with them; then each
    order the survivor now knows of is brought to what it should hold (a refund known on one side only)."""
    held = await ledger.holdings(conn, moved)
    debts = await lots.move(conn, moved, survivor_id=survivor_id)
    await ledger.append(conn, [*move_holdings(held, survivor_id=survivor_id, merge_event_id=merge_event_id,
                                              rules=rules),
                               *move_debts(debts, survivor_id=survivor_id, merge_event_id=merge_event_id,
                                           rules=rules)])
    rows = await ledger.take_orders(conn, moved)
    await ledger.move_refund_amounts(conn, moved, survivor_id=survivor_id)
    completions, refunds = orders_for_survivor(rows, survivor_id=survivor_id)
    await ledger.record_completions(conn, completions)
    await ledger.record_refunds(conn, refunds)
    order_ids = {row.order_id for row in rows} | {h.order_id for h in held if h.order_id is not None}
    states = await ledger.order_states(conn, [(survivor_id, order_id) for order_id in sorted(order_ids)])
    decided = await decide_orders(conn, states, rules=rules)
    return await lots.book(conn, [scoped_to_merge(entry, merge_event_id) for entry in decided], policy=rules.lots,
                           at=merged_at)
