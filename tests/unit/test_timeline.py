"""A customer's stage history over time, as tables: drift thresholds, `step`/`advance`/`replay`, and
the property that a replay never depends on the order or repetition in which touchpoints arrived."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES, DriftRules, RuleSet
from lifecycle_stage_engine.domain.stages import Stage, Touch, decide_stage, drift_after, drift_due, fold_history
from lifecycle_stage_engine.domain.timeline import State, advance, replay, step, transition_id

from tests.support.timeline_touches import T0, order, orders_on, refund, touch

DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)
RULES = DEFAULT_RULES


def moves(history) -> list[tuple]:
    """(from, to, reason, when) of each transition, `when` in days after T0."""
    return [(m.from_stage, m.to_stage, m.reason, (m.time - T0) / DAY) for m in history]


# --- drift thresholds -------------------------------------------------------------------------------

@pytest.mark.parametrize(("touches", "expected"), [
    ([], None),
    ([touch("page_viewed"), touch("product_viewed", 1)], None),
    (orders_on(0), (90, 180, "days")),
    (orders_on(0, 10), (20, 40, "rhythm")),
    (orders_on(0, 10, 30), (30, 60, "rhythm")),  # gaps 10, 20: median 15
    (orders_on(0, 10, 40, 50), (20, 40, "rhythm")),  # gaps 10, 30, 10: median 10
    (orders_on(0, 10, 30, 60, 100), (50, 100, "rhythm")),  # gaps 10, 20, 30, 40: median 25
    (orders_on(0, 7), (14, 28, "rhythm")),  # 2g is exactly the floor
    (orders_on(0, 5), (14, 20, "rhythm")),  # 2g = 10 under the floor, 4g = 20 over it
    (orders_on(0, 2), (14, 14, "rhythm")),  # both under the floor
    ([*orders_on(0, 10), refund(11, "o1")], (90, 180, "days")),  # refund of the last order: one-time again
    ([*orders_on(0, 10, 30), refund(31, "o0")], (40, 80, "rhythm")),  # gap 20 left
    ([*orders_on(0), refund(1, "o0")], None),
])
def test_drift_after_follows_the_buyers_rhythm_or_plain_days(touches, expected):
    after = drift_after(fold_history(touches), RULES)
    assert (after if after is None else (after[0] / DAY, after[1] / DAY, after[2])) == expected


@pytest.mark.parametrize(("touches", "expected_days"), [
    (orders_on(0), (90, 180)),
    (orders_on(0, 10), (30, 50)),
    (orders_on(0, 2), (16, 16)),
    ([*orders_on(0, 10), refund(11, "o1")], (90, 180)),  # the basis and the last order both change
    ([*orders_on(0, 10), refund(11, "o0")], (100, 190)),
    ([touch("product_viewed")], None),
])
def test_drift_due_counts_from_the_last_order_that_still_counts(touches, expected_days):
    due = drift_due(fold_history(touches), RULES)
    assert (due if due is None else ((due[0] - T0) / DAY, (due[1] - T0) / DAY)) == expected_days


def test_min_days_is_a_floor_under_both_rhythm_thresholds():
    rules = RuleSet(drift=DriftRules(min_days=30))
    after = drift_after(fold_history(orders_on(0, 10)), rules)
    assert after is not None and (after[0] / DAY, after[1] / DAY) == (30, 40)


ONE_ORDER = orders_on(0)
TWO_ORDERS = orders_on(0, 10)


@pytest.mark.parametrize(("touches", "at", "expected"), [
    (ONE_ORDER, None, (Stage.PURCHASE, "first_order")),
    (ONE_ORDER, T0 + 90 * DAY - TICK, (Stage.PURCHASE, "first_order")),
    (ONE_ORDER, T0 + 90 * DAY, (Stage.AT_RISK, "no_order_days")),
    (ONE_ORDER, T0 + 180 * DAY - TICK, (Stage.AT_RISK, "no_order_days")),
    (ONE_ORDER, T0 + 180 * DAY, (Stage.LAPSED, "no_order_days")),
    (ONE_ORDER, T0 + 9000 * DAY, (Stage.LAPSED, "no_order_days")),
    (TWO_ORDERS, T0 + 30 * DAY - TICK, (Stage.RETENTION, "repeat_order")),
    (TWO_ORDERS, T0 + 30 * DAY, (Stage.AT_RISK, "no_order_rhythm")),
    (TWO_ORDERS, T0 + 50 * DAY - TICK, (Stage.AT_RISK, "no_order_rhythm")),
    (TWO_ORDERS, T0 + 50 * DAY, (Stage.LAPSED, "no_order_rhythm")),
    ([*TWO_ORDERS, touch("referral_sent", 11 * 1440)], T0 + 30 * DAY - TICK,
     (Stage.LOYALTY, "repeat_orders_and_advocacy")),
    ([*TWO_ORDERS, touch("referral_sent", 11 * 1440)], T0 + 30 * DAY, (Stage.AT_RISK, "no_order_rhythm")),
    (orders_on(0, 2), T0 + 16 * DAY - TICK, (Stage.RETENTION, "repeat_order")),
    (orders_on(0, 2), T0 + 16 * DAY, (Stage.LAPSED, "no_order_rhythm")),  # floor: both thresholds at once
    ([touch("page_viewed")], T0 + 9000 * DAY, (Stage.AWARENESS, "first_touchpoint")),
    ([touch("product_viewed")], T0 + 9000 * DAY, (Stage.CONSIDERATION, "intent_signal")),
    ([*ONE_ORDER, refund(1, "o0")], T0 + 9000 * DAY, (Stage.CONSIDERATION, "intent_signal")),
    ([*TWO_ORDERS, refund(11, "o1")], T0 + 30 * DAY, (Stage.PURCHASE, "first_order")),  # days, not rhythm
    ([*TWO_ORDERS, refund(11, "o1")], T0 + 90 * DAY, (Stage.AT_RISK, "no_order_days")),
])
def test_decide_stage_at_a_moment(touches, at, expected):
    assert decide_stage(fold_history(touches), RULES, at=at) == expected


# --- step, advance, replay --------------------------------------------------------------------------

JOURNEY = [touch("page_viewed", 0), touch("product_viewed", 1), touch("order_completed", 2, order_id="o1"),
           touch("order_completed", 3, order_id="o2"), touch("referral_sent", 4)]


def test_a_journey_walks_the_stages_one_touch_at_a_time():
    state, steps = State(), []
    for journey_touch in JOURNEY:
        state, moved = step(state, journey_touch, RULES)
        steps.append([(m.from_stage, m.to_stage, m.reason, m.cause_event_ids, m.time) for m in moved])
    assert steps == [
        [(None, Stage.AWARENESS, "first_touchpoint", ("page_viewed-0",), T0)],
        [(Stage.AWARENESS, Stage.CONSIDERATION, "intent_signal", ("product_viewed-1",), JOURNEY[1].time)],
        [(Stage.CONSIDERATION, Stage.PURCHASE, "first_order", ("order_completed-2",), JOURNEY[2].time)],
        [(Stage.PURCHASE, Stage.RETENTION, "repeat_order", ("order_completed-3",), JOURNEY[3].time)],
        [(Stage.RETENTION, Stage.LOYALTY, "repeat_orders_and_advocacy", ("referral_sent-4",), JOURNEY[4].time)],
    ]
    assert (state.stage, state.stage_since, state.as_of) == (Stage.LOYALTY, JOURNEY[4].time, JOURNEY[4].key)
    assert replay(JOURNEY, RULES)[0] == state


@pytest.mark.parametrize(("until", "expected"), [
    (89 * DAY, []),
    (90 * DAY - TICK, []),
    (90 * DAY, [(Stage.PURCHASE, Stage.AT_RISK, "no_order_days", 90)]),
    (100 * DAY, [(Stage.PURCHASE, Stage.AT_RISK, "no_order_days", 90)]),
    (180 * DAY - TICK, [(Stage.PURCHASE, Stage.AT_RISK, "no_order_days", 90)]),
    (180 * DAY, [(Stage.PURCHASE, Stage.AT_RISK, "no_order_days", 90),
                 (Stage.AT_RISK, Stage.LAPSED, "no_order_days", 180)]),
    (9000 * DAY, [(Stage.PURCHASE, Stage.AT_RISK, "no_order_days", 90),
                  (Stage.AT_RISK, Stage.LAPSED, "no_order_days", 180)]),
], ids=["89d", "90d-1us", "90d", "100d", "180d-1us", "180d", "9000d"])
def test_time_passing_moves_a_one_time_buyer_at_the_moment_the_days_run_out(until, expected):
    bought, _ = replay(ONE_ORDER, RULES)
    state, moved = advance(bought, T0 + until, RULES)
    assert moves(moved) == expected
    assert all(m.cause_event_ids == (ONE_ORDER[0].event_id,) for m in moved)
    assert all(m.id == transition_id(ONE_ORDER[0].event_id, m.from_stage, m.to_stage, m.time) for m in moved)
    if moved:
        assert (state.stage, state.stage_since) == (moved[-1].to_stage, moved[-1].time)


def test_time_passing_moves_a_repeat_buyer_by_their_rhythm():
    state, moved = replay(TWO_ORDERS, RULES, until=T0 + 365 * DAY)
    assert moves(moved)[2:] == [(Stage.RETENTION, Stage.AT_RISK, "no_order_rhythm", 30),
                                (Stage.AT_RISK, Stage.LAPSED, "no_order_rhythm", 50)]
    assert state.stage == Stage.LAPSED


@pytest.mark.parametrize(("touches", "expected_last"), [
    ([*ONE_ORDER, order(200, "o1")], (Stage.LAPSED, Stage.RETENTION, "reactivated", 200)),
    ([*ONE_ORDER, order(100, "o1")], (Stage.AT_RISK, Stage.RETENTION, "reactivated", 100)),
    ([*TWO_ORDERS, touch("referral_sent", 11 * 1440), order(60, "o2")],
     (Stage.LAPSED, Stage.LOYALTY, "reactivated", 60)),
    ([*ONE_ORDER, refund(1, "o0"), order(200, "o1")], (Stage.CONSIDERATION, Stage.PURCHASE, "first_order", 200)),
])
def test_an_order_after_drifting_off_is_a_reactivation(touches, expected_last):
    state, moved = replay(touches, RULES)
    assert moves(moved)[-1] == expected_last
    assert state.stage == expected_last[1]


def test_an_order_resent_after_lapsing_is_no_reactivation():
    state, moved = replay([*ONE_ORDER, touch("order_completed", 200 * 1440, order_id="o0")], RULES)
    assert moves(moved)[-1] == (Stage.AT_RISK, Stage.LAPSED, "no_order_days", 180)
    assert state.stage == Stage.LAPSED


@pytest.mark.parametrize(("refund_day", "from_stage"), [
    (1 / 1440, Stage.PURCHASE), (100, Stage.AT_RISK), (200, Stage.LAPSED),
])
def test_refund_of_the_only_order_moves_back_to_consideration_from_any_stage(refund_day, from_stage):
    state, moved = replay([*ONE_ORDER, refund(refund_day, "o0")], RULES, until=T0 + 9000 * DAY)
    assert moves(moved)[-1] == (from_stage, Stage.CONSIDERATION, "order_refunded", refund_day)
    assert moved[-1].cause_event_ids == (refund(refund_day, "o0").event_id,)
    assert (state.stage, state.next_due(RULES)) == (Stage.CONSIDERATION, None)  # a non-buyer never drifts


@pytest.mark.parametrize("until_days", [0, 89, 90, 100, 180, 400])
def test_advance_is_idempotent(until_days):
    bought, _ = replay(ONE_ORDER, RULES)
    until = T0 + timedelta(days=until_days)
    once, _ = advance(bought, until, RULES)
    assert advance(once, until, RULES) == (once, [])
    assert advance(once, until - DAY, RULES) == (once, [])


def test_step_applies_what_time_did_before_the_touch():
    bought, _ = replay(ONE_ORDER, RULES)
    late_view = touch("page_viewed", 200 * 1440)
    state, moved = step(bought, late_view, RULES)
    assert moves(moved) == [(Stage.PURCHASE, Stage.AT_RISK, "no_order_days", 90),
                            (Stage.AT_RISK, Stage.LAPSED, "no_order_days", 180)]
    assert (state.stage, state.as_of) == (Stage.LAPSED, late_view.key)


@pytest.mark.parametrize(("incoming", "late"), [
    (touch("page_viewed", 5), True),
    (Touch(event_id="a-smaller-id", name="page_viewed", time=T0 + timedelta(minutes=10)), True),
    (touch("page_viewed", 10), False),  # the very touch applied last
    (Touch(event_id="z-larger-id", name="page_viewed", time=T0 + timedelta(minutes=10)), False),
    (touch("page_viewed", 15), False),
])
def test_is_after_tells_a_late_touch(incoming, late):
    state, _ = replay([touch("page_viewed", 10)], RULES)
    assert state.is_after(incoming) is late
    assert State().is_after(incoming) is False


def test_a_touch_before_a_drift_moment_already_applied_is_late():
    drifted, _ = replay(ONE_ORDER, RULES, until=T0 + 100 * DAY)
    assert drifted.is_after(touch("page_viewed", 89 * 1440)) is True
    assert drifted.is_after(touch("page_viewed", 90 * 1440)) is False
    assert drifted.is_after(touch("page_viewed", 95 * 1440)) is False


@pytest.mark.parametrize(("touches", "until_days", "expected_days"), [
    ([], None, None),
    ([touch("product_viewed")], None, None),
    (ONE_ORDER, None, 90),
    (ONE_ORDER, 89, 90),
    (ONE_ORDER, 90, 180),
    (ONE_ORDER, 179, 180),
    (ONE_ORDER, 180, None),
    (TWO_ORDERS, None, 30),
    (TWO_ORDERS, 30, 50),
    (orders_on(0, 2), None, 16),
    (orders_on(0, 2), 16, None),
])
def test_next_due_is_the_next_moment_time_alone_moves_the_customer(touches, until_days, expected_days):
    until = None if until_days is None else T0 + timedelta(days=until_days)
    state, _ = replay(touches, RULES, until=until)
    due = state.next_due(RULES)
    assert (due if due is None else (due - T0) / DAY) == expected_days


# --- replay does not depend on arrival order --------------------------------------------------------

NAMES = ("product_viewed", "order_completed", "order_refunded", "referral_sent", "page_viewed", "product_reviewed")
MINUTES = st.one_of(st.integers(0, 120), st.integers(0, 400 * 1440))
TOUCH_SPECS = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(("o1", "o2", "o3")), MINUTES,
                                 st.integers(1, 5)), max_size=12)


def touches_of(specs: list[tuple[str, str, int, int]]) -> list[Touch]:
    return [Touch(event_id=f"e{n}", name=name, time=T0 + timedelta(minutes=minutes),
                  properties={"order_id": order_id, "revenue": 10, "rating": rating})
            for n, (name, order_id, minutes, rating) in enumerate(specs)]


@settings(max_examples=300, deadline=None)
@given(specs=TOUCH_SPECS, until_minutes=MINUTES, data=st.data())
def test_replay_is_the_same_whatever_the_arrival_order_and_repetition(specs, until_minutes, data):
    touches = touches_of(specs)
    in_order = sorted(touches, key=lambda t: t.key)
    repeated = data.draw(st.lists(st.sampled_from(touches), max_size=6)) if touches else []
    arrived = data.draw(st.permutations([*touches, *repeated]))
    until = T0 + timedelta(minutes=until_minutes)

    expected = replay(in_order, RULES, until=until)
    assert replay(arrived, RULES, until=until) == expected

    state, history = State(), []
    for in_order_touch in in_order:
        state, moved = step(state, in_order_touch, RULES)
        history += moved
    state, moved = advance(state, until, RULES)
    assert (state, [*history, *moved]) == expected


# --- transition ids ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b", "same"), [
    (("e1", Stage.PURCHASE, Stage.AT_RISK), ("e1", Stage.PURCHASE, Stage.AT_RISK), True),
    (("e1", Stage.PURCHASE, Stage.AT_RISK), ("e1", Stage.RETENTION, Stage.AT_RISK), False),
    (("e1", None, Stage.AWARENESS), ("e1", Stage.AWARENESS, Stage.AWARENESS), False),
    (("e1", Stage.PURCHASE, Stage.AT_RISK), ("e1", Stage.PURCHASE, Stage.LAPSED), False),
    (("e1", Stage.PURCHASE, Stage.AT_RISK), ("e2", Stage.PURCHASE, Stage.AT_RISK), False),
])
def test_transition_ids_derive_from_cause_and_move(a, b, same):
    assert (transition_id(*a) == transition_id(*b)) is same


def test_a_replay_gives_the_same_ids_as_live_processing():
    live, _ = replay(ONE_ORDER, RULES)
    live, moved = advance(live, T0 + 200 * DAY, RULES)
    _, replayed = replay(ONE_ORDER, RULES, until=T0 + 200 * DAY)
    assert [m.id for m in moved] == [m.id for m in replayed[1:]]


def test_transition_ids_are_unique_within_a_history():
    # Rhythm 10 days: at-risk on day 30, lapsed on day 50 (caused by order o1's event). Refunding o0 on
    # day 55 leaves a one-time buyer (days basis) back in purchase; days then run out again from o1:
    # at-risk on day 100 and lapsed on day 190, again caused by o1's event, again at_risk -> lapsed.
    _, moved = replay([*TWO_ORDERS, refund(55, "o0")], RULES, until=T0 + 400 * DAY)
    assert [(m.to_stage, (m.time - T0) / DAY) for m in moved if m.to_stage == Stage.LAPSED] == [
        (Stage.LAPSED, 50), (Stage.LAPSED, 190)]
    ids = [m.id for m in moved]
    assert len(set(ids)) == len(ids), moves(moved)
