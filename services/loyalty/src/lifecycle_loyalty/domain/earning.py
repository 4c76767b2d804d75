"""The earn decisions: pure functions (what is known, what is held, the rules) -> entries. No I/O, no clock.

An order's points follow from what is known of the order, not from the order in which its
events arrived: an order earns while it is completed and not refunded. A refund that arrives
before its order, or an order re-sent after its refund, therefore earns nothing - the same view
the stage engine takes. `decide_order_entry` compares what an order should hold with what the
ledger holds for it and returns the entry that closes the gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Context, Decimal, localcontext
from typing import Any

from lifecycle_shared.events import derived_event_id
from lifecycle_shared.orders import AMOUNT_FIELDS, ZERO, parse_amount

from lifecycle_loyalty.domain.rules import (
    DEFAULT_EARN_RULES,
    Cap,
    EarnRules,
    ExpiryPolicy,
    LotPolicy,
)

# Wide enough that no product or quotient of amounts (up to 1e15, 6 places) and rates is ever rounded before
# the floor: the points are exact.
EXACT = Context(prec=80)
# At most this many points from one order (the ledger's bigint is far above; any rate stays within it).
MAX_POINTS = 10**15

__all__ = ["DEFAULT_EARN_RULES", "EarnRules", "Entry", "ExpiryPolicy", "LotPolicy", "OrderState"]


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
    currency: str | None = None  # None: the rules' default currency
    shipping: Decimal = ZERO  # what of `amount` is shipping
    # Refunded in parts (when `refunded_event_id` is set): the amounts refunded so far; None: refunded whole.
    refunded_part: Decimal | None = None
    multiplier: Decimal = Decimal(1)  # of the tier the customer held when the order completed


@dataclass(frozen=True)
class Entry:
    customer_id: str
    kind: str  # earn | reverse | adjust | bonus | move_out | move_in | spend | refund_spend | expire | debt | ...
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


def order_value(properties: dict[str, Any]) -> tuple[Decimal, Decimal, str | None]:
    """(amount, the shipping within it, currency) from an order's properties: `revenue` has no shipping
    (Segment's spec); `total`/`value` include `shipping` when given."""
    currency = properties.get("currency")
    code = currency.strip().upper() if isinstance(currency, str) and currency.strip() else None
    for name in AMOUNT_FIELDS:
        amount = parse_amount(properties.get(name))
        if amount is not None:
            shipping = parse_amount(properties.get("shipping")) if name != "revenue" else None
            amount = max(ZERO, amount)
            return amount, min(amount, max(ZERO, shipping or ZERO)), code
    return ZERO, ZERO, code


def points_for_amount(amount: Decimal, rules: EarnRules = DEFAULT_EARN_RULES, currency: str | None = None) -> int:
    """Whole points for an amount in a currency, rounded down, exactly; 0 in a currency the rules do not list
    or below the minimum order value."""
    rate = rules.currencies.get(currency or rules.default_currency)
    if rate is None or amount < rate.min_order_value:
        return 0
    units = max(ZERO, amount)
    if rate.zero_decimal:
        units = units.quantize(Decimal(1), rounding=ROUND_DOWN)
    with localcontext(EXACT):
        return min(MAX_POINTS, math.floor(units * rate.points / rate.per))


def order_points(order: OrderState, rules: EarnRules = DEFAULT_EARN_RULES) -> int:
    if order.amount is None:
        return 0
    base = order.amount - order.shipping if rules.purchase.exclude_shipping else order.amount
    points = points_for_amount(base, rules, order.currency)
    if order.multiplier == 1:
        return points
    with localcontext(EXACT):
        return min(MAX_POINTS, math.floor(points * order.multiplier))


def order_target(order: OrderState, rules: EarnRules = DEFAULT_EARN_RULES) -> int:
    """What the order should have earned: its points, none once refunded whole, and after partial refunds the
    points of what was not refunded, in proportion (rounded down; refunds of the whole amount or more: none)."""
    if order.amount is None:
        return 0
    if order.refunded_event_id is None:
        return order_points(order, rules)
    if order.refunded_part is None or order.amount <= 0 or order.refunded_part >= order.amount:
        return 0
    with localcontext(EXACT):
        return math.floor(order_points(order, rules) * (order.amount - order.refunded_part) / order.amount)


def decide_order_entry(order: OrderState, rules: EarnRules = DEFAULT_EARN_RULES) -> Entry | None:
    target = order_target(order, rules)
    # What expired stays expired: the order holds its points less those, and a refund takes back the rest.
    delta = max(0, target - order.expired) - order.held
    if delta == 0:
        return None
    parts: tuple[str, ...] = ()
    if order.refunded_event_id is not None and delta < 0:
        kind, cause = "reverse", order.refunded_event_id
        if order.refunded_part is not None:  # each further partial refund reverses more: another entry
            parts = (f"part:{order.refunded_part}",)
    else:
        kind = "earn" if order.held == 0 else "adjust"  # adjust: an earlier completion of the order won
        cause = order.completed_event_id or ""
    rule = {"earn": "points_per_currency_unit", "reverse": "refund_reversal", "adjust": "order_amount_corrected"}[kind]
    return Entry(customer_id=order.customer_id, kind=kind, points=delta, rule=f"{rule}/{rules.version}",
                 rule_version=rules.version, cause_event_id=cause, order_id=order.order_id, id_parts=parts,
                 at=order.completed_at if delta > 0 else None)


def stage_bonus(to_stage: str, rules: EarnRules = DEFAULT_EARN_RULES) -> int:
    return {str(stage): points for stage, points in rules.stage_reached.items()}.get(to_stage, 0)


def stage_bonus_rule(to_stage: str, rules: EarnRules = DEFAULT_EARN_RULES) -> str:
    return f"stage_bonus:{to_stage}/{rules.version}"


def decide_stage_bonus(customer_id: str, to_stage: str, *, held_rules: set[str], verified: bool,
                       rules: EarnRules = DEFAULT_EARN_RULES, at: datetime | None = None) -> Entry | None:
    """A bonus on reaching a rewarded stage, once per person: nothing when the customer (or an id merged
    into them) already holds it. Its id derives from `customer:<id>`, so re-entering the stage pays nothing.
    Only a verified move pays (StageChangedData.verified): a browser's write key names any customer, so an
    unverified review or referral must not mint points."""
    points, rule = stage_bonus(to_stage, rules), stage_bonus_rule(to_stage, rules)
    if not points or rule in held_rules or not verified:
        return None
    return Entry(customer_id=customer_id, kind="bonus", points=points, rule=rule, rule_version=rules.version,
                 cause_event_id=f"customer:{customer_id}", at=at)


def period_start(period: str, at: datetime) -> datetime:
    """The start of the calendar day, week (Monday) or month `at` falls in (its own time zone: UTC)."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def capped(points: int, cap: Cap | None, earned_in_period: int) -> int:
    """What of `points` the rule may still pay in the period (`earned_in_period`: paid by it so far)."""
    return points if cap is None else max(0, min(points, cap.points - earned_in_period))


@dataclass(frozen=True)
class Activity:
    """A referral completed or a review written, as the rules read it."""

    kind: str  # referral | review
    customer_id: str  # the referee (referral) or the reviewer
    cause_id: str  # what makes it once: `referral:<referee>`, `review:<review id or event id>`
    at: datetime
    referrer_id: str | None = None


def decide_activity(activity: Activity, *, earned_in_period: dict[tuple[str, str], int],
                    rules: EarnRules = DEFAULT_EARN_RULES) -> list[Entry]:
    """The entries a referral (to the referrer, the referee or both) or a review earns, within each rule's
    cap. `earned_in_period`: (customer, rule family) -> points that family paid the customer in the cap's
    period around `activity.at` so far (families: `referral:referrer`, `referral:referee`, `review`)."""
    if activity.kind == "review":
        paid = [("review", activity.customer_id, rules.review.points, rules.review.cap)]
    elif activity.referrer_id is not None and activity.referrer_id != activity.customer_id:
        paid = [("referral:referrer", activity.referrer_id, rules.referral.referrer, rules.referral.cap),
                ("referral:referee", activity.customer_id, rules.referral.referee, None)]
    else:
        paid = []
    entries = []
    for family, customer, points, cap in paid:
        points = capped(points, cap, earned_in_period.get((customer, family), 0))
        if points:
            # The rule is named without its version (the entry records it): a rule set replaced later does
            # not pay the same referral or review again.
            entries.append(Entry(customer_id=customer, kind="earn", points=points, rule=family,
                                 rule_version=rules.version, cause_event_id=activity.cause_id, at=activity.at))
    return entries
