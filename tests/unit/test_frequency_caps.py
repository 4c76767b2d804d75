"""Frequency caps per customer per local day and local ISO week (`domain.caps`): counted on the customer's
calendar (New York's 23- and 25-hour days included), deferral to the instant the cap frees, and `allot`:
the highest priority first, the others deferred - or suppressed with reason `frequency_cap` past eight
days - never lost, never more than the caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_messaging.domain.caps import (
    DEFAULT_CAPS,
    FREQUENCY_CAP,
    MAX_DEFERRAL,
    UNCAPPED,
    Candidate,
    Caps,
    allot,
    counts,
    frees_at,
    next_opening,
)
from lifecycle_messaging.domain.local_time import local_date, week_of
from lifecycle_messaging.domain.quiet_hours import DEFAULT_QUIET_HOURS, QuietHours, is_quiet

NEW_YORK = ZoneInfo("America/New_York")
HO_CHI_MINH = ZoneInfo("Asia/Ho_Chi_Minh")
BANGKOK = ZoneInfo("Asia/Bangkok")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


CAUSED = utc(2026, 7, 1)


def candidate(message_id: str, priority: int = 0, *, at: datetime = CAUSED, due: datetime | None = None,
              transactional: bool = False) -> Candidate:
    return Candidate(message_id, priority, transition_at=at, due_at=due or at, transactional=transactional)


# ---- the caps themselves ------------------------------------------------------------------------------

def test_the_default_is_one_a_day_and_three_a_week():
    assert DEFAULT_CAPS == Caps(per_day=1, per_week=3)


@pytest.mark.parametrize("cap", [0, -1, 1.5, True, "1"])
def test_a_cap_that_is_no_whole_positive_number_is_an_error_naming_it(cap):
    with pytest.raises(ValueError, match="per_day"):
        Caps(per_day=cap)


# ---- counted on the customer's calendar: tables ------------------------------------------------------

CAPS_TABLE = [
    # zone, sent (UTC), now (UTC), caps, frees at (None: allowed now)
    # New York's 23-hour day, 2026-03-08: 05:00 UTC (00:00 EST) to 04:00 UTC on the 9th (00:00 EDT).
    (NEW_YORK, [utc(2026, 3, 8, 5, 30)], utc(2026, 3, 9, 2), DEFAULT_CAPS, utc(2026, 3, 9, 4)),  # 22:00 EDT
    (NEW_YORK, [utc(2026, 3, 8, 5, 30)], utc(2026, 3, 9, 3, 59), DEFAULT_CAPS, utc(2026, 3, 9, 4)),
    (NEW_YORK, [utc(2026, 3, 8, 5, 30)], utc(2026, 3, 9, 4), DEFAULT_CAPS, None),  # 00:00 EDT: a new day
    (NEW_YORK, [utc(2026, 3, 8, 4, 30)], utc(2026, 3, 8, 5), DEFAULT_CAPS, None),  # 23:30 EST on the 7th: yesterday
    (NEW_YORK, [utc(2026, 3, 9, 3, 30)], utc(2026, 3, 8, 5, 0), DEFAULT_CAPS, utc(2026, 3, 9, 4)),  # 23:30 EDT: today
    # New York's 25-hour day, 2026-11-01: 04:00 UTC (00:00 EDT) to 05:00 UTC on the 2nd (00:00 EST).
    (NEW_YORK, [utc(2026, 11, 1, 4)], utc(2026, 11, 2, 4, 30), DEFAULT_CAPS, utc(2026, 11, 2, 5)),  # 23:30 EST
    (NEW_YORK, [utc(2026, 11, 1, 4)], utc(2026, 11, 2, 5), DEFAULT_CAPS, None),
    (NEW_YORK, [utc(2026, 11, 1, 5, 30)], utc(2026, 11, 1, 6, 30), DEFAULT_CAPS, utc(2026, 11, 2, 5)),  # 01:30 twice
    # Weeks: Monday 2026-03-02 to Sunday 2026-03-08 (spring forward inside), three sent: next Monday.
    (NEW_YORK, [utc(2026, 3, 2, 15), utc(2026, 3, 3, 15), utc(2026, 3, 4, 15)], utc(2026, 3, 5, 15),
     DEFAULT_CAPS, utc(2026, 3, 9, 4)),
    (NEW_YORK, [utc(2026, 3, 2, 15), utc(2026, 3, 3, 15)], utc(2026, 3, 5, 15), DEFAULT_CAPS, None),
    (NEW_YORK, [utc(2026, 3, 2, 15), utc(2026, 3, 3, 15)], utc(2026, 3, 3, 20), DEFAULT_CAPS, utc(2026, 3, 4, 5)),
    # Week of Monday 2026-10-26 ends with the 25-hour Sunday: the next starts 00:00 EST, 05:00 UTC.
    (NEW_YORK, [utc(2026, 10, 26, 15), utc(2026, 10, 27, 15), utc(2026, 10, 28, 15)], utc(2026, 11, 1, 23),
     DEFAULT_CAPS, utc(2026, 11, 2, 5)),
    # Ho Chi Minh City (UTC+7): days turn at 17:00 UTC.
    (HO_CHI_MINH, [utc(2026, 3, 8, 16, 59)], utc(2026, 3, 8, 17), DEFAULT_CAPS, None),
    (HO_CHI_MINH, [utc(2026, 3, 8, 17)], utc(2026, 3, 9, 16), DEFAULT_CAPS, utc(2026, 3, 9, 17)),
    (HO_CHI_MINH, [utc(2026, 3, 8, 17)], utc(2026, 3, 9, 16), Caps(per_day=2, per_week=None), None),
    (HO_CHI_MINH, [utc(2026, 3, 8, 17)], utc(2026, 3, 9, 16), UNCAPPED, None),
    # Bangkok (UTC+7): its Monday 2026-03-09 starts on Sunday 17:00 UTC - a UTC week would be wrong here.
    (BANGKOK, [utc(2026, 3, 8, 18), utc(2026, 3, 9, 18), utc(2026, 3, 10, 18)], utc(2026, 3, 11, 18),
     DEFAULT_CAPS, utc(2026, 3, 15, 17)),
    (BANGKOK, [utc(2026, 3, 8, 16), utc(2026, 3, 9, 18), utc(2026, 3, 10, 18)], utc(2026, 3, 11, 18),
     DEFAULT_CAPS, None),  # the first was Sunday 23:00 local: last week
    (BANGKOK, [utc(2026, 3, 9, 3)], utc(2026, 3, 9, 10), Caps(per_day=1, per_week=1), utc(2026, 3, 15, 17)),
    # A full day followed by an already full next day (a send made there): the day after.
    (BANGKOK, [utc(2026, 3, 9, 3), utc(2026, 3, 10, 3)], utc(2026, 3, 9, 10), Caps(per_day=1, per_week=None),
     utc(2026, 3, 10, 17)),
]


@pytest.mark.parametrize(("zone", "sent", "now", "caps", "expected"), CAPS_TABLE)
def test_caps_count_the_customers_calendar_days_and_weeks(zone, sent, now, caps, expected):
    assert frees_at(now, zone, sent, caps) == expected


def test_sends_count_in_their_local_day_and_week():
    tally = counts([utc(2026, 3, 9, 3, 30), utc(2026, 3, 9, 4), utc(2026, 3, 8, 4, 59)], NEW_YORK)
    assert {str(day): n for day, n in tally.days.items()} == {"2026-03-08": 1, "2026-03-09": 1, "2026-03-07": 1}
    assert {str(monday): n for monday, n in tally.weeks.items()} == {"2026-03-02": 2, "2026-03-09": 1}


def test_the_next_opening_waits_for_the_quiet_hours_of_the_day_the_cap_frees():
    sent = [utc(2026, 3, 8, 15)]  # 11:00 EDT on the change day
    assert next_opening(utc(2026, 3, 8, 18), NEW_YORK, sent, DEFAULT_CAPS, DEFAULT_QUIET_HOURS) == utc(2026, 3, 9, 12)
    assert next_opening(utc(2026, 3, 8, 18), NEW_YORK, sent, DEFAULT_CAPS) == utc(2026, 3, 9, 4)
    assert next_opening(utc(2026, 3, 8, 18), NEW_YORK, [], DEFAULT_CAPS, DEFAULT_QUIET_HOURS) == utc(2026, 3, 8, 18)
    assert next_opening(utc(2026, 3, 8, 3), NEW_YORK, [], DEFAULT_CAPS, DEFAULT_QUIET_HOURS) == utc(2026, 3, 8, 12)


# ---- allot: priority, deferral, suppression -----------------------------------------------------------

NOW = utc(2026, 7, 1, 3)  # 10:00 in Bangkok


def test_the_highest_priority_goes_and_the_others_wait_for_the_next_day():
    result = allot([candidate("offer", 1), candidate("receipt", 0, transactional=True), candidate("winback", 5)],
                   now=NOW, zone=BANGKOK, sent=[], quiet=DEFAULT_QUIET_HOURS)
    assert result.send == ("winback", "receipt")  # transactional: exempt, and uses no budget
    assert result.deferred == {"offer": utc(2026, 7, 2, 1)}  # tomorrow 08:00 Bangkok (midnight is quiet)
    assert result.suppressed == ()


def test_ties_go_to_the_oldest_transition_then_the_id():
    cands = [candidate("b", 3, at=utc(2026, 6, 30, 5)), candidate("c", 3, at=utc(2026, 6, 30, 4)),
             candidate("a", 3, at=utc(2026, 6, 30, 5))]
    result = allot(cands, now=NOW, zone=BANGKOK, sent=[], caps=Caps(per_day=2, per_week=None))
    assert [d.message_id for d in result.decisions] == ["c", "a", "b"]
    assert result.send == ("c", "a")
    assert result.deferred == {"b": utc(2026, 7, 1, 17)}  # no quiet window given: Bangkok's midnight


def test_what_the_week_leaves_is_all_that_goes():
    sent = [utc(2026, 6, 29, 3), utc(2026, 6, 30, 3)]  # Monday and Tuesday in Bangkok
    result = allot([candidate("x", 2), candidate("y", 1)], now=NOW, zone=BANGKOK, sent=sent,
                   caps=Caps(per_day=5, per_week=3))
    assert result.send == ("x",)
    assert result.deferred == {"y": utc(2026, 7, 5, 17)}  # Monday 2026-07-06 00:00 in Bangkok


def test_a_message_kept_waiting_past_eight_days_is_suppressed_as_frequency_capped():
    sent = [utc(2026, 6, 29, 3), utc(2026, 6, 30, 3), utc(2026, 7, 1, 2)]  # the week is full
    late = candidate("late", 1, at=NOW - timedelta(days=4))  # due last Saturday: would wait till Monday
    fresh = candidate("fresh", 1, at=utc(2026, 7, 1, 1))
    result = allot([late, fresh], now=NOW, zone=BANGKOK, sent=sent, quiet=DEFAULT_QUIET_HOURS)
    assert result.send == ()
    assert result.deferred == {"fresh": utc(2026, 7, 6, 1)}  # Monday 08:00 in Bangkok
    assert result.suppressed == ("late",)
    assert next(d for d in result.decisions if d.message_id == "late").reason == FREQUENCY_CAP == "frequency_cap"


def test_eight_days_cover_a_full_week_and_the_quiet_night_after_it():
    # Due on a fall-back Monday 00:00 in New York with the week already full: it waits until the next
    # Monday's 08:00 (7 days, 1 hour and 8 hours later), and that is still a deferral.
    sent = [utc(2026, 10, 26, 4, 30), utc(2026, 10, 26, 4, 40), utc(2026, 10, 26, 4, 50)]
    due = utc(2026, 10, 26, 4)
    result = allot([candidate("m", due=due)], now=utc(2026, 10, 26, 5), zone=NEW_YORK, sent=sent,
                   caps=Caps(per_day=None, per_week=3), quiet=DEFAULT_QUIET_HOURS)
    assert result.deferred == {"m": utc(2026, 11, 2, 13)}
    assert utc(2026, 11, 2, 13) - due < MAX_DEFERRAL


def test_quiet_hours_hold_but_never_suppress():
    long_due = candidate("m", due=NOW - timedelta(days=30))
    result = allot([long_due], now=utc(2026, 7, 1, 15), zone=BANGKOK, sent=[], quiet=DEFAULT_QUIET_HOURS)
    assert result.deferred == {"m": utc(2026, 7, 2, 1)}  # 22:00 in Bangkok: until 08:00


def test_transactional_messages_go_in_quiet_hours_and_past_the_caps():
    result = allot([candidate("receipt", transactional=True)], now=utc(2026, 7, 1, 15), zone=BANGKOK,
                   sent=[utc(2026, 7, 1, 2)] * 5, quiet=DEFAULT_QUIET_HOURS)
    assert result.send == ("receipt",)


# ---- properties ---------------------------------------------------------------------------------------

ZONES = [ZoneInfo(name) for name in ("America/New_York", "Asia/Ho_Chi_Minh", "Asia/Bangkok", "America/Santiago",
                                     "Australia/Lord_Howe", "Pacific/Apia")]
change_days = st.sampled_from([utc(2026, 3, 8, 7), utc(2026, 11, 1, 6), utc(2026, 4, 5, 3), utc(2026, 9, 6, 4),
                               utc(2026, 7, 1, 12), utc(2011, 12, 30, 10)])
moments = st.builds(lambda base, seconds: base + timedelta(seconds=seconds), change_days,
                    st.integers(-9 * 86400, 9 * 86400))
caps_strategy = st.builds(Caps, st.none() | st.integers(1, 3), st.none() | st.integers(1, 6))
windows = st.none() | st.sampled_from([DEFAULT_QUIET_HOURS, QuietHours.parse("22:00-01:30"),
                                        QuietHours.parse("02:30-06:00"), QuietHours.parse("12:00-13:00"),
                                        QuietHours.parse("00:00-23:00")])


@st.composite
def histories(draw: st.DrawFn) -> tuple[datetime, list[datetime]]:
    now = draw(moments)
    sent = draw(st.lists(st.builds(lambda s: now - timedelta(seconds=s), st.integers(0, 10 * 86400)), max_size=8))
    return now, sent


@given(history=histories(), zone=st.sampled_from(ZONES), caps=caps_strategy)
def test_after_deferral_to_the_instant_returned_the_cap_allows_it(history, zone, caps):
    now, sent = history
    frees = frees_at(now, zone, sent, caps)
    tally = counts(sent, zone)
    day, week = local_date(now, zone), week_of(local_date(now, zone))
    under = ((caps.per_day is None or tally.days.get(day, 0) < caps.per_day)
             and (caps.per_week is None or tally.weeks.get(week, 0) < caps.per_week))
    assert (frees is None) == under
    if frees is not None:
        assert frees > now
        assert frees_at(frees, zone, sent, caps) is None
        assert frees_at(frees - timedelta(microseconds=1), zone, sent, caps) is not None  # not a moment later


@given(history=histories(), zone=st.sampled_from(ZONES), caps=caps_strategy, quiet=windows)
def test_the_next_opening_is_outside_quiet_hours_and_within_the_caps(history, zone, caps, quiet):
    now, sent = history
    opening = next_opening(now, zone, sent, caps, quiet)
    assert opening >= now
    assert frees_at(opening, zone, sent, caps) is None
    assert quiet is None or not is_quiet(opening, zone, quiet)


@given(history=histories(), zone=st.sampled_from(ZONES), caps=caps_strategy, quiet=windows,
       specs=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5 * 86400), st.integers(0, 12 * 86400),
                                st.booleans()), max_size=6))
def test_allot_never_sends_more_than_the_caps_and_sends_in_priority_order(history, zone, caps, quiet, specs):
    now, sent = history
    cands = [Candidate(f"m{i}", priority, now - timedelta(seconds=age), now - timedelta(seconds=waited),
                       transactional=transactional and i % 2 == 0)
             for i, (priority, age, waited, transactional) in enumerate(specs)]
    result = allot(cands, now=now, zone=zone, sent=sent, caps=caps, quiet=quiet)
    # Every candidate decided exactly once, in rank order: nothing lost.
    assert sorted(d.message_id for d in result.decisions) == sorted(c.message_id for c in cands)
    ranked = sorted(cands, key=lambda c: c.rank)
    assert [d.message_id for d in result.decisions] == [c.message_id for c in ranked]
    by_id = {c.message_id: c for c in cands}
    marketing_sent = [m for m in result.send if not by_id[m].transactional]
    # Never more than the caps: the day's and the week's counts with these sends stay within them,
    # unless nothing marketing went out.
    if marketing_sent:
        tally = counts([*sent, *(now for _ in marketing_sent)], zone)
        day = local_date(now, zone)
        assert caps.per_day is None or tally.days[day] <= caps.per_day
        assert caps.per_week is None or tally.weeks[week_of(day)] <= caps.per_week
        assert quiet is None or not is_quiet(now, zone, quiet)
    # In priority order: every marketing message sent outranks every one that waits or is suppressed.
    waiting = [c for c in ranked if c.message_id not in result.send]
    assert all(by_id[m].rank < w.rank for m in marketing_sent for w in waiting)
    assert all(c.message_id in result.send for c in cands if c.transactional)
    # A deferral is to an instant the caps and the quiet hours allow; a suppression is a cap's, past the limit.
    after = [*sent, *(now for _ in marketing_sent)]
    for decision in result.decisions:
        if decision.action == "defer":
            assert decision.until is not None and decision.until > now
            assert frees_at(decision.until, zone, after, caps) is None
            assert quiet is None or not is_quiet(decision.until, zone, quiet)
        elif decision.action == "suppress":
            assert decision.reason == FREQUENCY_CAP
            assert frees_at(now, zone, after, caps) is not None
            assert next_opening(now, zone, after, caps, quiet) - by_id[decision.message_id].due_at > MAX_DEFERRAL
