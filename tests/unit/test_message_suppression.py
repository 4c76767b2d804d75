"""Whether a message still follows where its customer stands (`domain.suppression`): pure, no I/O.
Tables for the decision, and properties over every arrival order of a customer's transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_messaging.domain.suppression import (
    AUDIENCE,
    CAMPAIGN_DISABLED,
    CANCELLED,
    CONSENT,
    ERASED,
    FREQUENCY_CAP,
    HOLDOUT,
    REASONS,
    STALE,
    SUPERSEDED,
    Position,
    judged_at,
    latest_after,
    suppression,
    takes_over,
)
from lifecycle_messaging.settings import MessagingSettings

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def at(minutes_ago: float, transition_id: str, *, processed_minutes_ago: float | None = None) -> Position:
    processed = minutes_ago if processed_minutes_ago is None else processed_minutes_ago
    return Position(NOW - timedelta(minutes=minutes_ago), NOW - timedelta(minutes=processed), transition_id)


WELCOME, NUDGE, THANKS = at(30, "welcome"), at(20, "nudge"), at(10, "thanks")


@pytest.mark.parametrize(("message", "latest", "reason"), [
    (THANKS, THANKS, None),  # the latest, and fresh: sent
    (THANKS, None, None),  # nothing seen (a message moved here by a merge): judged by its age only
    (WELCOME, THANKS, SUPERSEDED),  # the customer has moved on
    (NUDGE, THANKS, SUPERSEDED),
    (THANKS, WELCOME, None),  # newer than the latest seen under this key (moved by a merge): not overtaken
    # equal time: the stage engine's later decision wins; equal on both, the later arrival (the latest seen)
    (at(10, "first", processed_minutes_ago=9), at(10, "again", processed_minutes_ago=1), SUPERSEDED),
    (at(10, "again", processed_minutes_ago=1), at(10, "first", processed_minutes_ago=9), None),
    (at(10, "a"), at(10, "b"), SUPERSEDED),
    (at(24 * 60 + 1, "old"), at(24 * 60 + 1, "old"), STALE),  # the latest, but older than the window
    (at(24 * 60, "just"), at(24 * 60, "just"), None),  # exactly the window: still news
    (at(3 * 24 * 60, "old"), at(2 * 24 * 60, "older-latest"), SUPERSEDED),  # both: superseded says more
])
def test_a_message_is_sent_only_for_the_latest_fresh_transition(message, latest, reason):
    assert suppression(message, latest=latest, now=NOW, freshness=DAY) == reason


@pytest.mark.parametrize(("arriving", "latest", "takes"), [
    (THANKS, None, True),
    (THANKS, WELCOME, True),
    (WELCOME, THANKS, False),  # late and older: the customer stays where the newer one put them
    (at(10, "b"), at(10, "a"), True),  # a tie: the later arrival
    (at(10, "b", processed_minutes_ago=5), at(10, "a", processed_minutes_ago=1), False),
])
def test_the_latest_transition_is_the_latest_by_event_time_then_decision_then_arrival(arriving, latest, takes):
    assert takes_over(arriving, latest) is takes


def test_latest_after_keeps_each_customer_apart():
    assert latest_after({"ann": THANKS}, [("ann", WELCOME), ("bob", WELCOME), ("bob", NUDGE)]) == {
        "ann": THANKS, "bob": NUDGE}


def test_the_default_window_is_a_day_and_every_reason_is_listed():
    assert MessagingSettings(environment="development").freshness == DAY
    assert set(REASONS) == {SUPERSEDED, STALE, CONSENT, HOLDOUT, FREQUENCY_CAP, CANCELLED, AUDIENCE,
                            CAMPAIGN_DISABLED, ERASED}


def test_the_wait_the_gateway_imposed_does_not_age_a_message():
    due, opening = NOW, NOW + timedelta(hours=9)  # held at NOW through a night of quiet hours
    assert judged_at(NOW, due_at=due, held_until=None) == NOW  # never held: now
    assert judged_at(NOW, due_at=None, held_until=opening) == NOW  # from before due_at was kept
    assert judged_at(NOW + timedelta(hours=3), due_at=due, held_until=opening) == NOW  # still waiting
    assert judged_at(opening, due_at=due, held_until=opening) == NOW  # at the opening: as when it came due
    # Late after the opening (the worker behind, the SMTP server down): that wait counts.
    assert judged_at(opening + timedelta(hours=2), due_at=due, held_until=opening) == NOW + timedelta(hours=2)
    message = Position(NOW - timedelta(minutes=1), NOW - timedelta(minutes=1), "t")
    assert suppression(message, latest=None, now=judged_at(opening, due_at=due, held_until=opening),
                       freshness=timedelta(hours=1)) is None
    assert suppression(message, latest=None, now=opening, freshness=timedelta(hours=1)) == STALE


def simulate(arrivals: list[Position], *, worker_after: set[int], window: timedelta) -> list[Position]:
    """Messaging as the service runs it, for one customer: each arrival is remembered as the latest if it is
    and queued unless suppressed, and overtakes what is pending; the delivery worker runs after the arrivals
    in `worker_after` and at the end, judging each pending message again. What was sent, in order."""
    latest: dict[str, Position] = {}
    pending: list[Position] = []
    sent: list[Position] = []

    def judge(message: Position) -> str | None:
        return suppression(message, latest=latest.get("c"), now=NOW, freshness=window)

    for index, arrival in enumerate(arrivals):
        latest = latest_after(latest, [("c", arrival)])
        pending = [m for m in [*pending, arrival] if judge(m) is None]
        if index in worker_after or index == len(arrivals) - 1:
            sent += [m for m in pending if judge(m) is None]
            pending = []
    return sent


def histories():
    """A customer's transitions (distinct moments, some older than a day), in some arrival order."""
    moments = st.lists(st.integers(min_value=0, max_value=3 * 24 * 60), min_size=1, max_size=6, unique=True)
    return moments.map(lambda ms: [at(m, f"t{m}") for m in ms]).flatmap(st.permutations)


@given(arrivals=histories())
def test_a_backlog_in_any_arrival_order_sends_at_most_the_latest_transitions_message(arrivals):
    newest = max(arrivals, key=lambda p: p.order)
    sent = simulate(arrivals, worker_after=set(), window=DAY)
    assert sent == ([newest] if NOW - newest.event_time <= DAY else [])


@given(arrivals=histories(), worker_after=st.sets(st.integers(min_value=0, max_value=5)))
def test_whenever_the_worker_runs_nothing_older_than_what_was_sent_goes_out(arrivals, worker_after):
    """Live (the worker between arrivals): each message sent was the latest seen when it left, so what is
    sent only ever moves forward, and nothing stale goes."""
    sent = simulate(arrivals, worker_after=worker_after, window=DAY)
    assert [p.order for p in sent] == sorted({p.order for p in sent})
    assert all(NOW - p.event_time <= DAY for p in sent)
    newest = max(arrivals, key=lambda p: p.order)
    assert (newest in sent) is (NOW - newest.event_time <= DAY)


@pytest.mark.parametrize(("trigger", "about_a_transition"), [
    (None, True), ("stage_changed", True), ("touchpoint", False), ("loyalty", False)])
def test_only_a_message_a_transition_started_can_be_superseded(trigger, about_a_transition):
    from lifecycle_messaging.domain.suppression import about_a_transition as judged_by_transitions

    assert judged_by_transitions(trigger) is about_a_transition


def test_a_delayed_message_is_aged_from_the_end_of_its_delay():
    from lifecycle_messaging.domain.suppression import delay_of

    cause = NOW - timedelta(days=3, minutes=5)  # the first order, three days and five minutes ago
    assert delay_of(cause, cause + timedelta(days=3)) == timedelta(days=3)
    assert delay_of(cause, None) == timedelta(0)
    aged = NOW - delay_of(cause, cause + timedelta(days=3))
    assert suppression(Position(cause, cause, "t"), latest=None, now=aged, freshness=DAY) is None
    assert suppression(Position(cause, cause, "t"), latest=None, now=NOW, freshness=DAY) == STALE
