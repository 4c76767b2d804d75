"""Lifecycle stages as a pure function of a customer's touchpoint history.

`fold(facts, touch, rules)` folds one touchpoint into the customer's facts; `decide_stage`
maps facts to a stage and the rule that put them there; `decide_transition` compares it with
the stage the customer is in. Folding the history in event-time order always gives the same
stage, so a late event is handled by folding the whole history again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from lifecycle_shared.orders import ZERO, order_amount, order_id_of
from lifecycle_shared.stages import RANK, Stage

__all__ = ["RANK", "Stage"]  # the shared vocabulary, used here


@dataclass(frozen=True)
class RuleSet:
    """The default rules as data; an operator can replace them (versioned)."""

    version: str = "default-v1"
    intent_events: frozenset[str] = frozenset({
        "product_viewed", "product_list_viewed", "product_added", "product_added_to_wishlist",
        "cart_viewed", "checkout_started", "signed_up", "products_searched", "product_clicked",
    })
    order_events: frozenset[str] = frozenset({"order_completed"})
    refund_events: frozenset[str] = frozenset({"order_refunded"})
    advocacy_events: frozenset[str] = frozenset({"referral_sent", "friend_referred", "referral_completed"})
    review_events: frozenset[str] = frozenset({"product_reviewed", "review_submitted"})
    min_review_rating: float = 4
    loyalty_min_orders: int = 2


DEFAULT_RULES = RuleSet()


@dataclass(frozen=True)
class Touch:
    """What the rules need of one touchpoint."""

    event_id: str
    name: str  # snake_case: 'order_completed', 'page_viewed', 'identify'
    time: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    touchpoints: int = 0
    intent: bool = False
    advocacy: bool = False
    # Completed orders that still count: (order id, amount). A refunded order never counts
    # again, whether its refund came after it or (skewed clocks, out-of-order sources) before.
    orders: tuple[tuple[str, Decimal], ...] = ()
    refunded_order_ids: tuple[str, ...] = ()
    last_event_time: datetime | None = None

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(order_id for order_id, _ in self.orders)

    @property
    def revenue(self) -> Decimal:
        return sum((amount for _, amount in self.orders), ZERO)


@dataclass(frozen=True)
class Transition:
    from_stage: Stage | None
    to_stage: Stage
    reason: str
    rule_version: str


def fold(facts: Facts, touch: Touch, rules: RuleSet = DEFAULT_RULES) -> Facts:
    facts = replace(facts, touchpoints=facts.touchpoints + 1,
                    last_event_time=max(filter(None, (facts.last_event_time, touch.time))))
    if touch.name in rules.intent_events:
        return replace(facts, intent=True)
    if touch.name in rules.advocacy_events or _is_good_review(touch, rules):
        return replace(facts, advocacy=True)
    order_id = order_id_of(touch.properties, fallback=touch.event_id)
    if touch.name in rules.order_events and order_id not in facts.order_ids + facts.refunded_order_ids:
        return replace(facts, orders=facts.orders + ((order_id, order_amount(touch.properties)),))
    if touch.name in rules.refund_events and order_id not in facts.refunded_order_ids:
        # The refund takes back what the order held, whatever amount the refund event names.
        return replace(facts, orders=tuple(o for o in facts.orders if o[0] != order_id),
                       refunded_order_ids=facts.refunded_order_ids + (order_id,))
    return facts


def fold_history(touches: list[Touch], rules: RuleSet = DEFAULT_RULES) -> Facts:
    facts = Facts()
    for touch in sorted(touches, key=lambda t: (t.time, t.event_id)):
        facts = fold(facts, touch, rules)
    return facts


def decide_stage(facts: Facts, rules: RuleSet = DEFAULT_RULES) -> tuple[Stage | None, str]:
    orders = len(facts.order_ids)
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


def decide_transition(current: Stage | None, facts: Facts, *, cause: Touch,
                      rules: RuleSet = DEFAULT_RULES) -> Transition | None:
    stage, rule = decide_stage(facts, rules)
    if stage is None or stage == current:
        return None
    if current is not None and RANK[stage] < RANK[current]:
        rule = "order_refunded" if cause.name in rules.refund_events else "history_recomputed"
    return Transition(from_stage=current, to_stage=stage, reason=rule, rule_version=rules.version)


def _is_good_review(touch: Touch, rules: RuleSet) -> bool:
    if touch.name not in rules.review_events:
        return False
    rating = touch.properties.get("rating")
    return isinstance(rating, int | float) and not isinstance(rating, bool) and rating >= rules.min_review_rating
