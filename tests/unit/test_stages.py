"""The lifecycle rules, as tables: pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lifecycle_stage_engine.domain.stages import (
    Facts,
    Stage,
    Touch,
    decide_stage,
    decide_transition,
    fold,
    fold_history,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def touch(name: str, minutes: int = 0, **properties) -> Touch:
    return Touch(event_id=f"{name}-{minutes}", name=name, time=T0 + timedelta(minutes=minutes),
                 properties=properties)


def stage_after(*touches: Touch) -> Stage | None:
    return decide_stage(fold_history(list(touches)))[0]


@pytest.mark.parametrize(("touches", "expected"), [
    ([], None),
    ([touch("page_viewed")], Stage.AWARENESS),
    ([touch("ad_clicked")], Stage.AWARENESS),
    ([touch("page_viewed"), touch("product_viewed", 1)], Stage.CONSIDERATION),
    ([touch("signed_up")], Stage.CONSIDERATION),
    ([touch("product_added")], Stage.CONSIDERATION),
    ([touch("order_completed", order_id="o1", revenue=10)], Stage.PURCHASE),
    ([touch("order_completed", 0, order_id="o1"), touch("order_completed", 1, order_id="o2")], Stage.RETENTION),
    ([touch("order_completed", 0, order_id="o1"), touch("order_completed", 1, order_id="o1")], Stage.PURCHASE),
    ([touch("order_completed", 0, order_id="o1"), touch("order_completed", 1, order_id="o2"),
      touch("referral_sent", 2)], Stage.LOYALTY),
    ([touch("order_completed", 0, order_id="o1"), touch("order_completed", 1, order_id="o2"),
      touch("product_reviewed", 2, rating=5)], Stage.LOYALTY),
    ([touch("order_completed", 0, order_id="o1"), touch("order_completed", 1, order_id="o2"),
      touch("product_reviewed", 2, rating=3)], Stage.RETENTION),
    ([touch("order_completed", 0, order_id="o1"), touch("referral_sent", 1)], Stage.PURCHASE),
], ids=lambda value: value if isinstance(value, str) else None)
def test_stage_follows_the_history(touches, expected):
    assert stage_after(*touches) == expected


def test_refund_of_only_order_moves_customer_back_to_consideration():
    bought = fold_history([touch("product_viewed"), touch("order_completed", 1, order_id="o1", revenue=20)])
    refund = touch("order_refunded", 2, order_id="o1", revenue=20)
    facts = fold(bought, refund)
    transition = decide_transition(Stage.PURCHASE, facts, cause=refund)
    assert transition is not None
    assert (transition.from_stage, transition.to_stage, transition.reason) == (
        Stage.PURCHASE, Stage.CONSIDERATION, "order_refunded")
    assert facts.revenue == 0


def test_refund_of_unknown_order_changes_nothing():
    bought = fold_history([touch("order_completed", 0, order_id="o1", revenue=20)])
    assert fold(bought, touch("order_refunded", 1, order_id="other")).order_ids == ("o1",)


def test_same_stage_is_no_transition():
    facts = fold_history([touch("product_viewed"), touch("product_added", 1)])
    assert decide_transition(Stage.CONSIDERATION, facts, cause=touch("product_added", 1)) is None


def test_first_touchpoint_transition_has_no_from_stage():
    first = touch("page_viewed")
    transition = decide_transition(None, fold(Facts(), first), cause=first)
    assert transition is not None
    assert (transition.from_stage, transition.to_stage, transition.reason) == (
        None, Stage.AWARENESS, "first_touchpoint")


def test_history_is_folded_in_event_time_order_whatever_the_arrival_order():
    in_order = [touch("page_viewed", 0), touch("order_completed", 1, order_id="o1", revenue=5),
                touch("order_refunded", 2, order_id="o1", revenue=5),
                touch("order_completed", 3, order_id="o2", revenue=7)]
    shuffled = [in_order[3], in_order[1], in_order[0], in_order[2]]
    assert fold_history(shuffled) == fold_history(in_order)
    assert fold_history(shuffled).order_ids == ("o2",)


def test_revenue_accumulates_from_revenue_total_or_value():
    facts = fold_history([touch("order_completed", 0, order_id="a", revenue=10.5),
                          touch("order_completed", 1, order_id="b", total="4.5"),
                          touch("order_completed", 2, order_id="c", value=1)])
    assert facts.revenue == 16.0


def test_a_refund_takes_back_the_orders_amount_not_the_amount_it_names():
    facts = fold_history([touch("order_completed", 0, order_id="o1", revenue=40),
                          touch("order_completed", 1, order_id="o2", revenue=2),
                          touch("order_refunded", 2, order_id="o1")])
    assert (facts.order_ids, facts.revenue) == (("o2",), 2)


@pytest.mark.parametrize("touches", [
    [touch("order_refunded", 0, order_id="o1"), touch("order_completed", 1, order_id="o1", revenue=80)],
    [touch("order_completed", 0, order_id="o1", revenue=80), touch("order_refunded", 1, order_id="o1"),
     touch("order_completed", 2, order_id="o1", revenue=80)],
], ids=["refund-before-its-order", "order-resent-after-its-refund"])
def test_a_refunded_order_never_counts_again(touches):
    facts = fold_history(touches)
    assert (facts.order_ids, facts.revenue, decide_stage(facts)[0]) == ((), 0, Stage.CONSIDERATION)


def test_amounts_past_int32_and_float_precision_stay_exact():
    facts = fold_history([touch("order_completed", 0, order_id="a", revenue="3000000000.10"),
                          touch("order_completed", 1, order_id="b", revenue=0.2)])
    assert facts.revenue == Decimal("3000000000.30")


def test_a_profile_keeps_short_scalar_traits_only():
    from lifecycle_shared.events import TouchpointData
    from lifecycle_stage_engine.domain.profiles import traits_of

    touchpoint = TouchpointData(type="identify", userId="u", messageId="m", timestamp=T0, receivedAt=T0,
                                traits={"firstName": "F" * 450_000, "lastName": "Nguyễn", "email": ["a@b.c"],
                                        "phone": 84912345678, "other": "x"},
                                context={"traits": "not an object", "locale": "vi-VN"})
    assert traits_of(touchpoint.all_traits(), touchpoint.context) == {
        "lastName": "Nguyễn", "phone": 84912345678, "locale": "vi-VN"}


@pytest.mark.parametrize(("from_stage", "to_stage", "forward"), [
    (None, "awareness", True), ("awareness", "consideration", True), ("purchase", "retention", True),
    ("loyalty", "retention", False), ("purchase", "purchase", False), ("retired", "purchase", True),
    (None, "unknown", False),
])
def test_the_shared_stage_order_says_what_is_forward(from_stage, to_stage, forward):
    from lifecycle_shared.stages import is_forward

    assert is_forward(from_stage, to_stage) is forward
