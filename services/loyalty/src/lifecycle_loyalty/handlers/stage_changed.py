"""lifecycle.stage_changed: a bonus on reaching a rewarded stage (loyalty by default), once per person.

The customer id is resolved through identity merges first; a person holding the bonus on any of their
ids (a guest's, moved in by a merge) is not paid again. A move that is not verified (caused by a write key's
event without identity verification) pays nothing: it is counted (`lifecycle_loyalty_bonuses_unpaid_total`).
"""

from __future__ import annotations

from lifecycle_shared.events import StageChangedData
from lifecycle_shared.kafka.registry import Emitted, Typed
from lifecycle_shared.topics import LOYALTY_EVENTS
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import aliases, ledger, lots, rulesets
from lifecycle_loyalty.domain.earning import EarnRules, decide_stage_bonus, stage_bonus
from lifecycle_loyalty.metrics import BONUSES_UNPAID
from lifecycle_loyalty.tiers import announce_credited


async def handle_stage_changed(conn: AsyncConnection, events: list[Typed[StageChangedData]], *,
                               rules: EarnRules | None = None, topic: str = LOYALTY_EVENTS) -> Emitted:
    """Announces on `topic` the tiers a bonus moved."""
    rules = rules or await rulesets.in_force(conn)
    customer_of = await aliases.lock_and_resolve(conn, {typed.data.customer_id for typed in events})
    held = await ledger.bonus_entries(conn, await aliases.members(conn, customer_of.values()))
    held_rules = {customer: {e.rule for e in entries if e.kind == "bonus"} for customer, entries in held.items()}
    bonuses = []
    for typed in events:
        customer = customer_of[typed.data.customer_id]
        bonus = decide_stage_bonus(customer, typed.data.to_stage, held_rules=held_rules[customer],
                                   verified=typed.data.verified, rules=rules, at=typed.data.event_time)
        if not typed.data.verified and stage_bonus(typed.data.to_stage, rules):
            BONUSES_UNPAID.labels("unverified").inc()
        if bonus:
            bonuses.append(bonus)
            held_rules[customer].add(bonus.rule)
    if not bonuses:
        return []
    await lots.book(conn, bonuses, policy=rules.lots, at=max(typed.data.event_time for typed in events))
    return await announce_credited(conn, sorted({bonus.customer_id for bonus in bonuses}), events, rules=rules,
                                   topic=topic)
