"""What the stage engine announces about a customer's history (`domain.announcements`): transitions applied in
order are each announced; a recomputed history stores its difference, announces a new current stage, and
corrects the rest - properties over histories the timeline computes, then the edges as examples."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from lifecycle_stage_engine.domain.announcements import in_order, rewrite
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES
from lifecycle_stage_engine.domain.stages import Stage, Touch
from lifecycle_stage_engine.domain.timeline import Transition, replay

from tests.support.timeline_touches import T0, order, touch

NAMES = ("product_viewed", "order_completed", "order_refunded", "referral_sent", "page_viewed")
SPECS = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(("o1", "o2")), st.integers(0, 400 * 1440),
                           st.booleans()), max_size=10)


def touches_of(specs: list[tuple[str, str, int, bool]]) -> list[Touch]:
    return [Touch(event_id=f"e{n}", name=name, time=T0 + timedelta(minutes=minutes),
                  properties={"order_id": order_id, "revenue": 10}, historical=historical)
            for n, (name, order_id, minutes, historical) in enumerate(specs)]


def transition(tid: str, from_stage: Stage | None, to_stage: Stage, *, historical: bool = False) -> Transition:
    return Transition(id=tid, from_stage=from_stage, to_stage=to_stage, reason="r", rule_version="v1",
                 cause_event_ids=(f"cause-{tid}",), time=T0, historical=historical)


@settings(max_examples=300, deadline=None)
@given(specs=SPECS, data=st.data())
def test_a_recomputed_history_stores_its_difference_and_announces_a_new_stage_once(specs, data):
    """The stored history is what a part of the touches gave (a late event, a merge, a replay still to come);
    the whole of them is computed again."""
    touches = touches_of(specs)
    known = [t for t, keep in zip(touches, data.draw(st.lists(st.booleans(), min_size=len(touches),
                                                               max_size=len(touches))), strict=True) if keep]
    historical = data.draw(st.booleans())
    until = T0 + timedelta(days=500)
    stored_state, stored = replay(known, DEFAULT_RULES, until=until)
    state, history = replay(touches, DEFAULT_RULES, until=until)
    current = {t.id for t in stored}

    change = rewrite(history, current, before=stored_state.stage, after=state.stage, profile_id="p",
                     customer_id="c", historical=historical)

    kept = {t.id for t in history}
    assert list(change.added) == [t for t in history if t.id not in current]
    assert list(change.superseded) == sorted(current - kept)
    assert (current - set(change.superseded)) | {t.id for t in change.added} == kept
    newest = history[-1] if history and state.stage != stored_state.stage else None
    if newest is None:
        assert change.stage_change is None
    else:
        assert change.stage_change is not None and change.stage_change.transition is newest
        assert (change.stage_change.event_id == newest.id) is (newest.id not in current)
        assert change.stage_change.historical is (newest.historical or historical)
    assert (change.correction_id is not None) is bool(
        change.superseded or [t for t in change.added if t is not newest])
    # The same recompute announces under the same ids; once applied, computing it again says nothing.
    assert rewrite(history, current, before=stored_state.stage, after=state.stage, profile_id="p",
                   customer_id="c", historical=historical) == change
    again = rewrite(history, kept, before=state.stage, after=state.stage, profile_id="p", customer_id="c")
    assert (again.added, again.superseded, again.correction_id, again.stage_change) == ((), (), None, None)


@settings(max_examples=200, deadline=None)
@given(specs=SPECS, historical=st.booleans())
def test_transitions_applied_in_order_are_each_announced_under_their_own_id(specs, historical):
    _, history = replay(touches_of(specs), DEFAULT_RULES, until=T0 + timedelta(days=500))
    changes = in_order(history, historical=historical)
    assert [c.transition for c in changes] == history
    assert [c.event_id for c in changes] == [t.id for t in history]
    assert [c.historical for c in changes] == [t.historical or historical for t in history]


def test_a_late_event_that_only_fills_in_the_past_is_a_correction_without_a_stage_change():
    stored_state, stored = replay([touch("page_viewed", 10), order(1, "o1")], DEFAULT_RULES)
    state, history = replay([touch("page_viewed", 10), touch("product_viewed", 20), order(1, "o1")], DEFAULT_RULES)
    assert stored_state.stage == state.stage == Stage.PURCHASE

    change = rewrite(history, {t.id for t in stored}, before=stored_state.stage, after=state.stage,
                     profile_id="p", customer_id="c")

    assert [t.to_stage for t in change.added] == [Stage.CONSIDERATION, Stage.PURCHASE]
    assert len(change.superseded) == 1  # awareness -> purchase is no longer part of it
    assert change.correction_id is not None and change.stage_change is None


def test_a_new_stage_whose_transition_is_its_only_addition_is_no_correction():
    first = transition("t1", None, Stage.AWARENESS)
    second = transition("t2", Stage.AWARENESS, Stage.PURCHASE, historical=True)
    change = rewrite([first, second], {"t1"}, before=Stage.AWARENESS, after=Stage.PURCHASE, profile_id="p",
                     customer_id="c")
    assert change.correction_id is None
    assert change.stage_change is not None
    assert (change.stage_change.event_id, change.stage_change.historical) == ("t2", True)


def test_a_stage_change_to_a_transition_stored_already_gets_an_id_of_its_own():
    """A replay going back to a transition it had superseded, or a merge bringing the absorbed profile's:
    it was announced under its id once, for another time or customer key."""
    first, second = transition("t1", None, Stage.AWARENESS), transition("t2", Stage.AWARENESS, Stage.PURCHASE)
    announced = [rewrite([first, second], {"t1", "t2"}, before=Stage.AWARENESS, after=Stage.PURCHASE, profile_id="p",
                         customer_id=customer_id).stage_change for customer_id in ("c", "other")]
    assert all(change is not None and change.transition is second for change in announced)
    ids = {change.event_id for change in announced if change is not None}
    assert len(ids) == 2 and "t2" not in ids


def test_going_there_and_back_are_two_corrections():
    a, b = transition("ta", None, Stage.AWARENESS), transition("tb", None, Stage.CONSIDERATION)
    there = rewrite([b], {"ta"}, before=Stage.AWARENESS, after=Stage.CONSIDERATION, profile_id="p", customer_id="c")
    back = rewrite([a], {"tb"}, before=Stage.CONSIDERATION, after=Stage.AWARENESS, profile_id="p", customer_id="c")
    assert None not in (there.correction_id, back.correction_id)
    assert there.correction_id != back.correction_id


def test_a_replay_announces_everything_as_historical():
    live = transition("t1", None, Stage.AWARENESS)
    assert [c.historical for c in in_order([live])] == [False]
    assert [c.historical for c in in_order([live], historical=True)] == [True]
    change = rewrite([live], set(), before=None, after=Stage.AWARENESS, profile_id="p", customer_id="c",
                     historical=True)
    assert change.stage_change is not None and change.stage_change.historical
