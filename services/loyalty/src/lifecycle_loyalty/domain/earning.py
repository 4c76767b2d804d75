"""Earn rules as data and the pure functions that apply them.

An order's points follow from what is known of the order, not from the order in which its
events arrived: an order earns while it is completed and not refunded. A refund that arrives
before its order, or an order re-sent after its refund, therefore earns nothing - the same view
the stage engine takes. `decide_order_entry` compares what an order should hold with what the
ledger holds for it and returns the entry that closes the gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from lifecycle_shared.events import derived_event_id


@dataclass(frozen=True)
class EarnRules:
    version: str = "default-v1"
    points_per_currency_unit: Decimal = Decimal(1)
    stage_bonus: tuple[tuple[str, int], ...] = (("loyalty", 500),)


DEFAULT_EARN_RULES = EarnRules()


@dataclass(frozen=True)
class OrderState:
    customer_id: str
    order_id: str
    amount: Decimal | None  # None until the order's completion is known
    completed_event_id: str | None
    refunded_event_id: str | None
    held: int  # net points the ledger holds for this order now


@dataclass(frozen=True)
class Entry:
    customer_id: str
    kind: str  # earn | reverse | adjust | bonus | move_out | move_in
    points: int
    rule: str
    cause_event_id: str
    order_id: str | None = None
    # More of what makes the entry unique, when one cause and rule yield several entries (a merge's).
    id_parts: tuple[str, ...] = ()


def entry_id(entry: Entry) -> str:
    """Derived from cause + rule (+ id_parts), so appending the same decision twice is a no-op."""
    return derived_event_id(entry.cause_event_id, "loyalty", entry.rule, *entry.id_parts)


def points_for_amount(amount: Decimal, rules: EarnRules = DEFAULT_EARN_RULES) -> int:
    """Whole points per currency unit spent, rounded down."""
    return math.floor(max(Decimal(0), amount) * rules.points_per_currency_unit)


def decide_order_entry(order: OrderState, rules: EarnRules = DEFAULT_EARN_RULES) -> Entry | None:
    earning = order.amount is not None and order.refunded_event_id is None
    target = points_for_amount(order.amount, rules) if earning and order.amount is not None else 0
    delta = target - order.held
    if delta == 0:
        return None
    if order.refunded_event_id is not None:
        kind, cause = "reverse", order.refunded_event_id
    else:
        kind = "earn" if order.held == 0 else "adjust"  # adjust: an earlier completion of the order won
        cause = order.completed_event_id or ""
    rule = {"earn": "points_per_currency_unit", "reverse": "refund_reversal", "adjust": "order_amount_corrected"}[kind]
    return Entry(customer_id=order.customer_id, kind=kind, points=delta, rule=f"{rule}/{rules.version}",
                 cause_event_id=cause, order_id=order.order_id)


def stage_bonus(to_stage: str, rules: EarnRules = DEFAULT_EARN_RULES) -> int:
    return dict(rules.stage_bonus).get(to_stage, 0)


def stage_bonus_rule(to_stage: str, rules: EarnRules = DEFAULT_EARN_RULES) -> str:
    return f"stage_bonus:{to_stage}/{rules.version}"


def decide_stage_bonus(customer_id: str, to_stage: str, *, held_rules: set[str], verified: bool,
                       rules: EarnRules = DEFAULT_EARN_RULES) -> Entry | None:
    """A bonus on reaching a rewarded stage, once per person: nothing when the customer (or an id merged
    into them) already holds it. Its id derives from `customer:<id>`, so re-entering the stage pays nothing.
    Only a verified move pays (StageChangedData.verified): a browser's write key names any customer, so an
    unverified review or referral must not mint points."""
    points, rule = stage_bonus(to_stage, rules), stage_bonus_rule(to_stage, rules)
    if not points or rule in held_rules or not verified:
        return None
    return Entry(customer_id=customer_id, kind="bonus", points=points, rule=rule,
                 cause_event_id=f"customer:{customer_id}")
