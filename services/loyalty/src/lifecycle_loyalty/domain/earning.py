"""Earn rules as data and the pure functions that apply them.

An order's points follow from what is known of the order, not from the order in which its
events arrived: an order earns while it is completed and not refunded. A refund that arrives
before its order, or an order re-sent after its refund, therefore earns nothing - the same view
the stage engine takes. `decide_order_entry` compares what an order should hold with what the
ledger holds for it and returns the entry that closes the gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from lifecycle_shared.events import derived_event_id

EXPIRY_KINDS = ("never", "after_days", "end_of_month", "end_of_year")


@dataclass(frozen=True)
class ExpiryPolicy:
    """When a lot expires: `never`; `after_days` (`count` days after earning); `end_of_month` (at the end
    of the month `count` months after the earning month: 0 = the same month); `end_of_year` (likewise)."""

    kind: str = "never"
    count: int = 0

    def expires_at(self, earned_at: datetime) -> datetime | None:
        if self.kind == "after_days":
            return earned_at + timedelta(days=self.count)
        if self.kind == "end_of_month":
            months = earned_at.year * 12 + earned_at.month - 1 + self.count + 1  # the month after the last one
            return earned_at.replace(year=months // 12, month=months % 12 + 1, day=1, hour=0, minute=0, second=0,
                                     microsecond=0)
        if self.kind == "end_of_year":
            return earned_at.replace(year=earned_at.year + self.count + 1, month=1, day=1, hour=0, minute=0,
                                     second=0, microsecond=0)
        return None


@dataclass(frozen=True)
class LotPolicy:
    pending: timedelta = timedelta(days=14)
    expiry: ExpiryPolicy = ExpiryPolicy()


@dataclass(frozen=True)
class EarnRules:
    version: str = "default-v1"
    points_per_currency_unit: Decimal = Decimal(1)
    stage_bonus: tuple[tuple[str, int], ...] = (("loyalty", 500),)
    lots: LotPolicy = field(default_factory=LotPolicy)


DEFAULT_EARN_RULES = EarnRules()


@dataclass(frozen=True)
class OrderState:
    customer_id: str
    order_id: str
    amount: Decimal | None  # None until the order's completion is known
    completed_event_id: str | None
    refunded_event_id: str | None
    held: int  # net points the ledger holds for this order now
    completed_at: datetime | None = None
    expired: int = 0  # points of this order that expired (on this account): never earned again


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
    rule_version: str = ""
    debt: int = 0  # what the entry adds to the customer's debt (a `debt` entry) or settles (< 0)
    lot_id: str | None = None  # the lot it made (a credit) or emptied (an expiry)
    at: datetime | None = None  # when its cause happened (a credit's lot is earned then)


def entry_id(entry: Entry) -> str:
    """Derived from cause + rule (+ id_parts), so appending the same decision twice is a no-op."""
    return derived_event_id(entry.cause_event_id, "loyalty", entry.rule, *entry.id_parts)


def points_for_amount(amount: Decimal, rules: EarnRules = DEFAULT_EARN_RULES) -> int:
    """Whole points per currency unit spent, rounded down."""
    return math.floor(max(Decimal(0), amount) * rules.points_per_currency_unit)


def decide_order_entry(order: OrderState, rules: EarnRules = DEFAULT_EARN_RULES) -> Entry | None:
    earning = order.amount is not None and order.refunded_event_id is None
    target = points_for_amount(order.amount, rules) if earning and order.amount is not None else 0
    # What expired stays expired: the order holds its points less those, and a refund takes back the rest.
    delta = max(0, target - order.expired) - order.held
    if delta == 0:
        return None
    if order.refunded_event_id is not None:
        kind, cause = "reverse", order.refunded_event_id
    else:
        kind = "earn" if order.held == 0 else "adjust"  # adjust: an earlier completion of the order won
        cause = order.completed_event_id or ""
    rule = {"earn": "points_per_currency_unit", "reverse": "refund_reversal", "adjust": "order_amount_corrected"}[kind]
    return Entry(customer_id=order.customer_id, kind=kind, points=delta, rule=f"{rule}/{rules.version}",
                 rule_version=rules.version, cause_event_id=cause, order_id=order.order_id,
                 at=order.completed_at if delta > 0 else None)


def stage_bonus(to_stage: str, rules: EarnRules = DEFAULT_EARN_RULES) -> int:
    return dict(rules.stage_bonus).get(to_stage, 0)


def stage_bonus_rule(to_stage: str, rules: EarnRules = DEFAULT_EARN_RULES) -> str:
    return f"stage_bonus:{to_stage}/{rules.version}"


def decide_stage_bonus(customer_id: str, to_stage: str, *, held_rules: set[str],
                       rules: EarnRules = DEFAULT_EARN_RULES, at: datetime | None = None) -> Entry | None:
    """A bonus on reaching a rewarded stage, once per person: nothing when the customer (or an id merged
    into them) already holds it. Its id derives from `customer:<id>`, so re-entering the stage pays nothing."""
    points, rule = stage_bonus(to_stage, rules), stage_bonus_rule(to_stage, rules)
    if not points or rule in held_rules:
        return None
    return Entry(customer_id=customer_id, kind="bonus", points=points, rule=rule, rule_version=rules.version,
                 cause_event_id=f"customer:{customer_id}", at=at)
