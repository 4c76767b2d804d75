"""Quiet hours in the customer's time zone (`domain.local_time`, `domain.quiet_hours`): the zone from the
`timezone` trait, the window's end as the right UTC instant in Ho Chi Minh City, Bangkok and New York -
on New York's spring-forward (2026-03-08) and fall-back (2026-11-01) days too - and, for any instant and
window, a held message released at an instant outside the quiet hours, never before it needs to be."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_messaging.domain.local_time import (
    customer_zone,
    first_instant,
    local_date,
    next_day_start,
    next_week_start,
    start_of_day,
    week_of,
    zone_named,
)
from lifecycle_messaging.domain.quiet_hours import DEFAULT_QUIET_HOURS, NEVER, QuietHours, is_quiet, opens_at, spell

NEW_YORK = ZoneInfo("America/New_York")
HO_CHI_MINH = ZoneInfo("Asia/Ho_Chi_Minh")
BANGKOK = ZoneInfo("Asia/Bangkok")
SHOP = BANGKOK


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def window(text: str) -> QuietHours:
    return QuietHours.parse(text)


# ---- the customer's zone ----------------------------------------------------------------------------

@pytest.mark.parametrize(("trait", "expected"), [
    ("Asia/Ho_Chi_Minh", "Asia/Ho_Chi_Minh"),
    ("  america/new_york ", "America/New_York"),  # case and spaces forgiven
    ("ASIA/BANGKOK", "Asia/Bangkok"),
    ("Asia/Saigon", "Asia/Saigon"),  # a tz database alias is a zone too
    ("UTC", "UTC"),
    (None, "Asia/Bangkok"),
    ("", "Asia/Bangkok"),
    (7, "Asia/Bangkok"),
    ("+07:00", "Asia/Bangkok"),
    ("GMT+7 (Indochina Time)", "Asia/Bangkok"),
    ("Mars/Olympus_Mons", "Asia/Bangkok"),
    ("../../etc/passwd", "Asia/Bangkok"),
    ("/usr/share/zoneinfo/Asia/Tokyo", "Asia/Bangkok"),
    ("localtime", "Asia/Bangkok"),  # the machine's zone is no customer's
    ("posixrules", "Asia/Bangkok"),
    ("Asia/" + "x" * 100, "Asia/Bangkok"),
])
def test_the_zone_is_the_timezone_trait_else_the_shops(trait, expected):
    assert customer_zone(trait, shop=SHOP).key == expected


def test_a_shop_zone_setting_that_is_no_zone_is_an_error_naming_it():
    assert zone_named("Asia/Ho_Chi_Minh") == HO_CHI_MINH
    with pytest.raises(ValueError, match="Asia/Hanoi"):
        zone_named("Asia/Hanoi")


# ---- wall times that do not happen once ---------------------------------------------------------------

@pytest.mark.parametrize(("shown", "expected"), [
    (datetime(2026, 3, 8, 1, 59), utc(2026, 3, 8, 6, 59)),  # EST, just before the jump
    (datetime(2026, 3, 8, 2, 0), utc(2026, 3, 8, 7, 0)),  # in the gap: the jump itself (03:00 EDT)
    (datetime(2026, 3, 8, 2, 30), utc(2026, 3, 8, 7, 0)),
    (datetime(2026, 3, 8, 2, 59, 59), utc(2026, 3, 8, 7, 0)),
    (datetime(2026, 3, 8, 3, 0), utc(2026, 3, 8, 7, 0)),  # EDT
    (datetime(2026, 11, 1, 0, 59), utc(2026, 11, 1, 4, 59)),  # EDT
    (datetime(2026, 11, 1, 1, 0), utc(2026, 11, 1, 5, 0)),  # in the fold: the first occurrence (EDT)
    (datetime(2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30)),
    (datetime(2026, 11, 1, 2, 0), utc(2026, 11, 1, 7, 0)),  # EST
])
def test_a_wall_time_is_the_first_instant_the_clock_reaches_it(shown, expected):
    assert first_instant(shown, NEW_YORK) == expected


def test_after_the_first_occurrence_of_a_folded_time_comes_its_second():
    second = first_instant(datetime(2026, 11, 1, 1, 30), NEW_YORK, after=utc(2026, 11, 1, 5, 30))
    assert second == utc(2026, 11, 1, 6, 30)  # 01:30 EST


@pytest.mark.parametrize(("zone", "day", "starts", "hours"), [
    (NEW_YORK, date(2026, 3, 8), utc(2026, 3, 8, 5), 23),  # spring forward
    (NEW_YORK, date(2026, 11, 1), utc(2026, 11, 1, 4), 25),  # fall back
    (NEW_YORK, date(2026, 7, 1), utc(2026, 7, 1, 4), 24),
    (NEW_YORK, date(2026, 1, 15), utc(2026, 1, 15, 5), 24),
    (HO_CHI_MINH, date(2026, 3, 8), utc(2026, 3, 7, 17), 24),
    (BANGKOK, date(2026, 11, 1), utc(2026, 10, 31, 17), 24),
    (ZoneInfo("Pacific/Apia"), date(2011, 12, 30), utc(2011, 12, 30, 10), 0),  # the day Samoa skipped
])
def test_local_days_start_when_their_date_first_shows(zone, day, starts, hours):
    assert start_of_day(day, zone) == starts
    assert start_of_day(day + timedelta(days=1), zone) - starts == timedelta(hours=hours)
    if hours:
        assert local_date(starts, zone) == day
        assert next_day_start(starts, zone) == starts + timedelta(hours=hours)


def test_a_local_week_starts_at_the_start_of_its_monday():
    # Week of Monday 2026-03-02 holds New York's spring forward: 167 hours.
    assert next_week_start(utc(2026, 3, 2, 5), NEW_YORK) == utc(2026, 3, 9, 4)
    assert next_week_start(utc(2026, 3, 9, 3, 59), NEW_YORK) == utc(2026, 3, 9, 4)  # Sunday 23:59 EDT
    # Week of Monday 2026-10-26 ends with the fall-back Sunday: 169 hours.
    assert next_week_start(utc(2026, 10, 26, 4), NEW_YORK) == utc(2026, 11, 2, 5)
    # Bangkok's Monday begins on Sunday 17:00 UTC.
    assert next_week_start(utc(2026, 3, 8, 16, 59), BANGKOK) == utc(2026, 3, 8, 17)
    assert next_week_start(utc(2026, 3, 8, 17), BANGKOK) == utc(2026, 3, 15, 17)


# ---- the window ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("21:00-08:00", QuietHours(time(21), time(8))),
    (" 22:30 - 07:15 ", QuietHours(time(22, 30), time(7, 15))),
    ("12:00-13:00", QuietHours(time(12), time(13))),
    ("off", NEVER),
    ("", NEVER),
    ("08:00-08:00", QuietHours(time(8), time(8))),
])
def test_a_window_is_read_from_its_setting(text, expected):
    assert QuietHours.parse(text) == expected


@pytest.mark.parametrize("text", ["21-8", "21:00", "24:00-08:00", "21:00-08:60", "9pm-8am", "21:00-08:00-09:00"])
def test_a_window_that_is_no_window_is_an_error_naming_it(text):
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        QuietHours.parse(text)


def test_the_default_window_is_2100_to_0800():
    assert str(DEFAULT_QUIET_HOURS) == "21:00-08:00" and DEFAULT_QUIET_HOURS.crosses_midnight
    assert str(NEVER) == "off" and NEVER.empty


# ---- when a held message goes: tables ----------------------------------------------------------------

NIGHT = "21:00-08:00"
TABLES = [
    # Ho Chi Minh City, UTC+7 all year: 21:00-08:00 local is 14:00-01:00 UTC.
    (HO_CHI_MINH, NIGHT, utc(2026, 3, 8, 13, 59), None),  # 20:59
    (HO_CHI_MINH, NIGHT, utc(2026, 3, 8, 14, 0), utc(2026, 3, 9, 1)),  # 21:00: until 08:00 tomorrow
    (HO_CHI_MINH, NIGHT, utc(2026, 3, 8, 17, 0), utc(2026, 3, 9, 1)),  # local midnight
    (HO_CHI_MINH, NIGHT, utc(2026, 3, 9, 0, 59, 59), utc(2026, 3, 9, 1)),  # 07:59:59
    (HO_CHI_MINH, NIGHT, utc(2026, 3, 9, 1, 0), None),  # 08:00 sharp: open
    (HO_CHI_MINH, NIGHT, utc(2026, 11, 1, 6, 30), None),  # 13:30 on New York's fall-back day: nothing changes
    (HO_CHI_MINH, "22:30-07:15", utc(2026, 11, 1, 15, 29), None),
    (HO_CHI_MINH, "22:30-07:15", utc(2026, 11, 1, 15, 30), utc(2026, 11, 2, 0, 15)),
    # Bangkok, UTC+7, no DST; a lunchtime window that does not cross midnight; the empty window.
    (BANGKOK, NIGHT, utc(2026, 12, 31, 16, 59), utc(2027, 1, 1, 1)),  # 23:59 on New Year's Eve
    (BANGKOK, NIGHT, utc(2026, 7, 1, 2, 0), None),  # 09:00
    (BANGKOK, "12:00-13:00", utc(2026, 7, 1, 4, 59), None),  # 11:59
    (BANGKOK, "12:00-13:00", utc(2026, 7, 1, 5, 0), utc(2026, 7, 1, 6)),  # 12:00
    (BANGKOK, "12:00-13:00", utc(2026, 7, 1, 6, 0), None),  # 13:00
    (BANGKOK, "12:00-13:00", utc(2026, 7, 1, 15, 0), None),  # 22:00: no night window
    (BANGKOK, "off", utc(2026, 7, 1, 15, 0), None),
    (BANGKOK, "08:00-08:00", utc(2026, 7, 1, 1, 0), None),
    # New York, ordinary days: EST (UTC-5) in January, EDT (UTC-4) in July.
    (NEW_YORK, NIGHT, utc(2026, 1, 16, 4), utc(2026, 1, 16, 13)),  # 23:00 EST -> 08:00 EST
    (NEW_YORK, NIGHT, utc(2026, 7, 15, 11, 59), utc(2026, 7, 15, 12)),  # 07:59 EDT
    (NEW_YORK, NIGHT, utc(2026, 7, 15, 12), None),  # 08:00 EDT
    (NEW_YORK, NIGHT, utc(2026, 7, 16, 0, 59), None),  # 20:59 EDT
    (NEW_YORK, NIGHT, utc(2026, 7, 16, 1), utc(2026, 7, 16, 12)),  # 21:00 EDT
    # New York, spring forward, 2026-03-08: 02:00 EST (07:00 UTC) becomes 03:00 EDT.
    (NEW_YORK, NIGHT, utc(2026, 3, 8, 2), utc(2026, 3, 8, 12)),  # 21:00 EST on the 7th: a 10-hour night
    (NEW_YORK, NIGHT, utc(2026, 3, 8, 6, 59), utc(2026, 3, 8, 12)),  # 01:59 EST -> 08:00 EDT
    (NEW_YORK, NIGHT, utc(2026, 3, 8, 11, 59), utc(2026, 3, 8, 12)),  # 07:59 EDT
    (NEW_YORK, NIGHT, utc(2026, 3, 8, 12), None),  # 08:00 EDT
    (NEW_YORK, NIGHT, utc(2026, 3, 9, 0, 59), None),  # 20:59 EDT on the change day
    (NEW_YORK, NIGHT, utc(2026, 3, 9, 1), utc(2026, 3, 9, 12)),  # 21:00 EDT
    (NEW_YORK, "22:00-02:30", utc(2026, 3, 8, 6, 59), utc(2026, 3, 8, 7)),  # ends in the gap: at the jump
    (NEW_YORK, "22:00-02:30", utc(2026, 3, 8, 7), None),  # 03:00 EDT
    (NEW_YORK, "02:30-06:00", utc(2026, 3, 8, 6, 59, 59), None),  # starts in the gap: 01:59:59 EST is open
    (NEW_YORK, "02:30-06:00", utc(2026, 3, 8, 7), utc(2026, 3, 8, 10)),  # 03:00 EDT -> 06:00 EDT
    (NEW_YORK, "02:10-02:40", utc(2026, 3, 8, 6, 59), None),  # wholly in the gap: no quiet that night
    (NEW_YORK, "02:10-02:40", utc(2026, 3, 8, 7), None),
    (NEW_YORK, "02:10-02:40", utc(2026, 3, 9, 6, 20), utc(2026, 3, 9, 6, 40)),  # the next night: as usual (EDT)
    # New York, fall back, 2026-11-01: 02:00 EDT (06:00 UTC) becomes 01:00 EST.
    (NEW_YORK, NIGHT, utc(2026, 11, 1, 1), utc(2026, 11, 1, 13)),  # 21:00 EDT on Oct 31: a 12-hour night
    (NEW_YORK, NIGHT, utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 13)),  # 01:30 EDT -> 08:00 EST
    (NEW_YORK, NIGHT, utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 13)),  # 01:30 EST (again)
    (NEW_YORK, NIGHT, utc(2026, 11, 1, 12, 59), utc(2026, 11, 1, 13)),  # 07:59 EST
    (NEW_YORK, NIGHT, utc(2026, 11, 1, 13), None),  # 08:00 EST
    (NEW_YORK, NIGHT, utc(2026, 11, 2, 1, 59), None),  # 20:59 EST
    (NEW_YORK, NIGHT, utc(2026, 11, 2, 2), utc(2026, 11, 2, 13)),  # 21:00 EST
    (NEW_YORK, "22:00-01:30", utc(2026, 11, 1, 5), utc(2026, 11, 1, 5, 30)),  # ends at the first 01:30 (EDT)
    (NEW_YORK, "22:00-01:30", utc(2026, 11, 1, 5, 30), None),
    (NEW_YORK, "22:00-01:30", utc(2026, 11, 1, 6, 10), None),  # 01:10 EST, the repeat: not quiet again
    (NEW_YORK, "01:30-06:00", utc(2026, 11, 1, 5, 15), None),  # 01:15 EDT, before the first 01:30
    (NEW_YORK, "01:30-06:00", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 11)),  # 01:30 EDT -> 06:00 EST
    (NEW_YORK, "01:30-06:00", utc(2026, 11, 1, 6, 15), utc(2026, 11, 1, 11)),  # 01:15 EST: inside, through the repeat
]


@pytest.mark.parametrize(("zone", "text", "now", "expected"), TABLES)
def test_a_message_is_held_until_the_quiet_hours_end(zone, text, now, expected):
    assert opens_at(now, zone, window(text)) == expected
    assert is_quiet(now, zone, window(text)) == (expected is not None)


def test_the_change_nights_are_as_long_as_the_customers_night():
    assert spell(date(2026, 3, 7), NEW_YORK, DEFAULT_QUIET_HOURS) == (utc(2026, 3, 8, 2), utc(2026, 3, 8, 12))
    assert spell(date(2026, 10, 31), NEW_YORK, DEFAULT_QUIET_HOURS) == (utc(2026, 11, 1, 1), utc(2026, 11, 1, 13))
    assert spell(date(2026, 3, 8), NEW_YORK, window("02:10-02:40")) is None


def test_an_instant_in_another_zone_means_the_same_instant():
    eastern = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=1)  # 01:30 EST = 06:30 UTC
    assert opens_at(eastern, NEW_YORK, DEFAULT_QUIET_HOURS) == utc(2026, 11, 1, 13)


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="now"):
        opens_at(datetime(2026, 1, 1), BANGKOK, DEFAULT_QUIET_HOURS)


# ---- properties ---------------------------------------------------------------------------------------

# The three zones of the shops, and zones whose clocks change at midnight or by half an hour, or skipped a day.
ZONES = [ZoneInfo(name) for name in ("America/New_York", "Asia/Ho_Chi_Minh", "Asia/Bangkok", "America/Santiago",
                                     "America/Havana", "Australia/Lord_Howe", "Europe/London", "Pacific/Apia")]
instants = st.datetimes(min_value=datetime(2010, 1, 1), max_value=datetime(2030, 12, 31),
                        timezones=st.just(UTC))
wall_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 0, 0, 10, 15, 30, 59]), st.integers(0, 59))
windows = st.builds(QuietHours, wall_times, wall_times)
# The change days themselves, where mistakes hide.
change_days = st.sampled_from([utc(2026, 3, 8, 7), utc(2026, 11, 1, 6), utc(2011, 12, 30, 10),
                               utc(2026, 4, 5, 3), utc(2026, 9, 6, 4)])
near_changes = st.builds(lambda base, seconds: base + timedelta(seconds=seconds), change_days,
                         st.integers(-36 * 3600, 36 * 3600))


@given(now=instants | near_changes, zone=st.sampled_from(ZONES), quiet=windows,
       fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_a_held_message_goes_at_the_first_instant_outside_the_quiet_hours(now, zone, quiet, fraction):
    opens = opens_at(now, zone, quiet)
    if opens is None:
        assert not is_quiet(now, zone, quiet)
        return
    assert opens > now  # never earlier than now
    assert not is_quiet(opens, zone, quiet)  # never inside the window
    assert opens - now < timedelta(hours=50)  # held for a night or two at most, never dropped
    # timedelta * float rounds to the microsecond: a fraction near 1 can land on `opens` itself
    between = min(now + (opens - now) * fraction, opens - timedelta(microseconds=1))
    assert is_quiet(between, zone, quiet)  # and not held longer than the quiet hours last


@given(now=instants | near_changes, zone=st.sampled_from(ZONES))
def test_the_empty_window_never_holds(now, zone):
    assert opens_at(now, zone, NEVER) is None


@given(now=instants | near_changes, zone=st.sampled_from(ZONES))
def test_local_days_and_weeks_follow_the_clock(now, zone):
    day_ends = next_day_start(now, zone)
    assert day_ends > now
    assert local_date(day_ends, zone) > local_date(now, zone)
    assert local_date(day_ends - timedelta(microseconds=1), zone) == local_date(now, zone)
    week_ends = next_week_start(now, zone)
    assert week_ends >= day_ends
    assert week_of(local_date(week_ends, zone)) > week_of(local_date(now, zone))
    assert week_of(local_date(week_ends - timedelta(microseconds=1), zone)) == week_of(local_date(now, zone))


@given(trait=st.text() | st.none() | st.integers() | st.sampled_from(["Asia/Ho_Chi_Minh", "etc/utc", "Etc/GMT-7"]))
def test_any_trait_gives_a_zone_never_an_error(trait):
    zone = customer_zone(trait, shop=SHOP)
    assert zone is SHOP or (isinstance(trait, str) and zone.key.lower() == trait.strip().lower())


@given(now=instants, zone=st.sampled_from([HO_CHI_MINH, BANGKOK]), quiet=windows)
def test_in_utc_plus_7_all_year_quiet_is_the_utc_time_plus_seven_hours_in_the_window(now, zone, quiet):
    shown = (now + timedelta(hours=7)).time()
    inside = (quiet.start <= shown < quiet.end if not quiet.crosses_midnight
              else shown >= quiet.start or shown < quiet.end) and not quiet.empty
    assert is_quiet(now, zone, quiet) == inside
    if inside:
        opens = opens_at(now, zone, quiet)
        assert opens is not None and (opens + timedelta(hours=7)).time() == quiet.end
