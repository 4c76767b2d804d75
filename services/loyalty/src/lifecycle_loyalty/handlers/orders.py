"""touchpoint.order_completed and touchpoint.order_refunded: record what is known of each order,
then bring the ledger to what the order should hold (earn, reverse or adjust).

Both types go through one handler, so a run of orders and refunds is one read and a few writes,
and the result does not depend on the order the events arrived in. The customer (the event's subject)
is resolved through identity merges first: an absorbed id's orders and refunds go to its survivor.
"""

from __future__ import annotations

from datetime import datetime

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from lifecycle_shared.orders import order_amount, order_id_of
from lifecycle_shared.topics import LOYALTY_EVENTS
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import aliases, ledger, lots, rulesets
from lifecycle_loyalty.domain.announcements import debts_recorded
from lifecycle_loyalty.domain.earning import EarnRules, order_value
from lifecycle_loyalty.domain.merging import Completions
from lifecycle_loyalty.tiers import announce_tiers, decide_orders

ORDER_COMPLETED = "touchpoint.order_completed"
ORDER_REFUNDED = "touchpoint.order_refunded"


def _earlier(fact: tuple, other: tuple | None) -> bool:
    """Facts end in (event id, event time): the earlier time wins, ties go to the smaller id."""
    return other is None or (fact[-1], fact[-2]) < (other[-1], other[-2])


async def handle_orders(conn: AsyncConnection, events: list[Typed[TouchpointData]], *,
                        rules: EarnRules | None = None, topic: str = LOYALTY_EVENTS) -> Emitted:
    """Announces on `topic` the debts the batch recorded and the tiers it changed."""
    rules = rules or await rulesets.in_force(conn)
    completions: Completions = {}
    refunds: dict[ledger.OrderKey, tuple[str, datetime]] = {}
    amounts: list[ledger.RefundRow] = []
    customer_of = await aliases.lock_and_resolve(conn, {typed.event.subject for typed in events})
    for typed in events:
        event, properties = typed.event, typed.data.properties
        key = (customer_of[event.subject], order_id_of(properties, fallback=event.id))
        if event.type == ORDER_COMPLETED:
            fact = (*order_value(properties), event.id, event.time)
            if _earlier(fact, completions.get(key)):
                completions[key] = fact
        else:
            refunded = order_amount(properties)  # a partial refund names its amount; none (or 0): the whole order
            amounts.append((*key, event.id, refunded if refunded > 0 else None, event.time))
            if _earlier((event.id, event.time), refunds.get(key)):
                refunds[key] = (event.id, event.time)
    await ledger.record_completions(conn, completions)
    await ledger.record_refunds(conn, refunds)
    await ledger.record_refund_amounts(conn, amounts)
    states = await ledger.order_states(conn, sorted({*completions, *refunds}))
    at = max(typed.event.time for typed in events)
    posted = await lots.book(conn, await decide_orders(conn, states, rules=rules), policy=rules.lots, at=at)
    people = sorted({customer for customer, _ in {*completions, *refunds}})
    return [*debts_recorded(posted, topic=topic, at=at),
            *await announce_tiers(conn, people, at=at, rules=rules, topic=topic,
                                  cause=min(typed.event.id for typed in events))]
