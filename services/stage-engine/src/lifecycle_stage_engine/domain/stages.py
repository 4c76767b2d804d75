"""Lifecycle stages as a pure function of a customer's touchpoint history and the time.

`fold(facts, touch, rules)` folds one touchpoint into the customer's facts; `decide_stage` maps
facts, at a moment, to a stage and the rule that put them there: the journey stage their actions
earned, unless time since their last order has made them at-risk or lapsed. `decide_transition`
compares it with the stage the customer is in. Folding the history in event-time order always
gives the same result, so a late event is handled by folding the whole history again.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from lifecycle_shared.orders import ZERO, order_amount, order_id_of
from lifecycle_shared.stages import DRIFT, RANK, REACTIVATED, Stage

from lifecycle_stage_engine.domain.rules import DEFAULT_RULES, RuleSet

__all__ = ["RANK", "Stage"]  # the shared vocabulary, used here


@dataclass(frozen=True)
class Touch:
    """What the rules need of one touchpoint."""

    event_id: str
    name: str  # snake_case: 'order_completed', 'page_viewed', 'identify'
    time: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    historical: bool = False  # came through a historical import
    verified: bool = False  # its identity is established (TouchpointData.verified): it may move points

    @property
    def key(self) -> tuple[datetime, str]:
        """Event-time order; ties go to the smaller event id."""
        return self.time, self.event_id


class Order(NamedTuple):
    order_id: str
    amount: Decimal
    time: datetime
    event_id: str  # the event that completed it
    historical: bool = False
    verified: bool = False  # the event that completed it was (drift from this order is as verified as it)


@dataclass(frozen=True)
class Facts:
    touchpoints: int = 0
    intent: bool = False
    advocacy: bool = False
    # Completed orders that still count. A refunded order never counts again, whether its refund
    # came after it or (skewed clocks, out-of-order sources) before.
    orders: tuple[Order, ...] = ()
    refunded_order_ids: tuple[str, ...] = ()
    last_event: tuple[datetime, str] | None = None  # Touch.key of the latest touch folded
    # When the purchase model judged this buyer at-risk (`timeline.judge_p_alive`); their next order clears it.
    doubted_at: datetime | None = None

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(order.order_id for order in self.orders)

    @property
    def revenue(self) -> Decimal:
        return sum((order.amount for order in self.orders), ZERO)

    @property
    def last_order(self) -> Order | None:
        return max(self.orders, key=lambda o: (o.time, o.event_id), default=None)

    @property
    def last_event_time(self) -> datetime | None:
        return self.last_event[0] if self.last_event else None


@dataclass(frozen=True)
class StageDecision:
    """A move from one stage to another, and the rule (of which version) that decided it."""

    from_stage: Stage | None
    to_stage: Stage
    reason: str
    rule_version: str


def fold(facts: Facts, touch: Touch, rules: RuleSet = DEFAULT_RULES) -> Facts:
    # Facts built once, field by field (dataclasses.replace is the slow part of a hot loop).
    key = touch.key
    last = key if facts.last_event is None or key > facts.last_event else facts.last_event
    touchpoints, name = facts.touchpoints + 1, touch.name
    if name in rules.intent_events:
        return Facts(touchpoints, True, facts.advocacy, facts.orders, facts.refunded_order_ids, last, facts.doubted_at)
    if name in rules.advocacy_events or _is_good_review(touch, rules):
        return Facts(touchpoints, facts.intent, True, facts.orders, facts.refunded_order_ids, last, facts.doubted_at)
    if name in rules.order_events:
        order_id = order_id_of(touch.properties, fallback=touch.event_id)
        if order_id not in facts.order_ids + facts.refunded_order_ids:
            order = Order(order_id, order_amount(touch.properties), touch.time, touch.event_id, touch.historical,
                          touch.verified)
            return Facts(touchpoints, facts.intent, facts.advocacy, (*facts.orders, order), facts.refunded_order_ids,
                         last, None)  # an order answers the model's doubt
    if name in rules.refund_events:
        order_id = order_id_of(touch.properties, fallback=touch.event_id)
        if order_id not in facts.refunded_order_ids:
            # The refund takes back what the order held, whatever amount the refund event names.
            return Facts(touchpoints, facts.intent, facts.advocacy,
                         tuple(o for o in facts.orders if o.order_id != order_id),
                         (*facts.refunded_order_ids, order_id), last, facts.doubted_at)
    return Facts(touchpoints, facts.intent, facts.advocacy, facts.orders, facts.refunded_order_ids, last,
                 facts.doubted_at)


def fold_history(touches: list[Touch], rules: RuleSet = DEFAULT_RULES) -> Facts:
    facts = Facts()
    for touch in sorted(touches, key=lambda t: t.key):
        facts = fold(facts, touch, rules)
    return facts


# A drift moment this far off is no moment: rules that judge by a huge multiple of a long rhythm (years
# between imported orders) must not run off the calendar.
LONGEST_DRIFT_S = 1000 * 365 * 86400.0
NEVER = datetime(9000, 1, 1, tzinfo=UTC)


def drift_after(facts: Facts, rules: RuleSet = DEFAULT_RULES) -> tuple[timedelta, timedelta, str] | None:
    """How long after their last order a buyer becomes at-risk and lapsed, and on what basis
    (`rhythm`: their median gap between orders; `days`: the one-time buyer's plain days)."""
    if not facts.orders:
        return None
    # Asked several times per step about the same (immutable) facts: kept on them, per rule set.
    cached: tuple[RuleSet, tuple[timedelta, timedelta, str]] | None = facts.__dict__.get("_drift_after")
    if cached is not None and cached[0] is rules:
        return cached[1]
    drift = rules.drift
    times = sorted(order.time for order in facts.orders)
    if len(times) < 2:
        after = timedelta(days=drift.one_time_at_risk_days), timedelta(days=drift.one_time_lapsed_days), "days"
    else:
        gap = statistics.median((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False))
        floor = drift.min_days * 86400
        after = (timedelta(seconds=min(LONGEST_DRIFT_S, max(floor, drift.at_risk_factor * gap))),
                 timedelta(seconds=min(LONGEST_DRIFT_S, max(floor, drift.lapsed_factor * gap))), "rhythm")
    facts.__dict__["_drift_after"] = (rules, after)
    return after


def drift_due(facts: Facts, rules: RuleSet = DEFAULT_RULES) -> tuple[datetime, datetime] | None:
    """When this buyer becomes at-risk and lapsed if no order comes (None: not a buyer)."""
    after = drift_after(facts, rules)
    last = facts.last_order
    if after is None or last is None:
        return None
    return _moment(last.time, after[0]), _moment(last.time, after[1])


def _moment(start: datetime, after: timedelta) -> datetime:
    """`start + after`, or NEVER when that is past it (a rule set may put a moment beyond any calendar)."""
    try:
        return min(start + after, NEVER)
    except OverflowError:
        return NEVER


def decide_stage(facts: Facts, rules: RuleSet = DEFAULT_RULES, *, at: datetime | None = None,
                 p_alive: float | None = None) -> tuple[Stage | None, str]:
    """The stage these facts put a customer in at `at` (None: judge actions only, not time)."""
    if at is not None and facts.orders:
        drifted = _drift_stage(facts, rules, at, p_alive)
        if drifted is not None:
            return drifted
    orders = len(facts.orders)
    if orders >= rules.loyalty_min_orders and facts.advocacy:
        return Stage.LOYALTY, "repeat_orders_and_advocacy"
    if orders >= 2:
        return Stage.RETENTION, "repeat_order"
    if orders == 1:
        return Stage.PURCHASE, "first_order"
    if facts.intent or facts.refunded_order_ids:
        return Stage.CONSIDERATION, "intent_signal"
    if facts.touchpoints:
        return Stage.AWARENESS, "first_touchpoint"
    return None, "no_touchpoint"


def _drift_stage(facts: Facts, rules: RuleSet, at: datetime, p_alive: float | None) -> tuple[Stage, str] | None:
    due = drift_due(facts, rules)
    after = drift_after(facts, rules)
    assert after is not None  # called for buyers only, and a buyer has one
    basis = after[2]
    if due is not None and at >= due[1]:
        return Stage.LAPSED, f"no_order_{basis}"
    if due is not None and at >= due[0]:
        return Stage.AT_RISK, f"no_order_{basis}"
    threshold = rules.drift.at_risk_below_p_alive
    if facts.doubted_at is not None or (p_alive is not None and threshold is not None and p_alive < threshold):
        return Stage.AT_RISK, "low_p_alive"  # judged by the model; until the next order (which clears doubted_at)
    return None


def decide_transition(current: Stage | None, facts: Facts, *, cause: Touch | None, at: datetime | None = None,
                      rules: RuleSet = DEFAULT_RULES) -> StageDecision | None:
    """The move `cause` (a touchpoint; None: time passing) makes, judged at `at`."""
    stage, rule = decide_stage(facts, rules, at=at)
    if stage is None or stage == current:
        return None
    if cause is not None and cause.name in rules.refund_events:
        rule = "order_refunded"
    elif cause is not None and current in DRIFT and stage in RANK and cause.name in rules.order_events:
        rule = REACTIVATED
    return StageDecision(from_stage=current, to_stage=stage, reason=rule, rule_version=rules.version)


def _is_good_review(touch: Touch, rules: RuleSet) -> bool:
    if touch.name not in rules.review_events:
        return False
    rating = touch.properties.get("rating")
    return isinstance(rating, int | float) and not isinstance(rating, bool) and rating >= rules.min_review_rating
