"""The customer's clock: their time zone, and local days, weeks and wall times as UTC instants. Pure.

The zone is the customer's `timezone` trait, an IANA name (`Asia/Ho_Chi_Minh`, `america/new_york`: case
is forgiven), else the shop's zone (a parameter, from the service's settings). A trait that is no zone
name (empty, a number, `+07:00`, a path, a name the tz database does not know) falls back to the shop's
zone, never an error. Zones come from the tz database through `zoneinfo` (the system's, or the `tzdata`
package where there is none): read once per name and cached - a constant table, not I/O that varies.

Every instant given or returned is timezone-aware; returned instants are in UTC.

Wall times that do not happen once (daylight saving time):
- **in a gap** (clocks jump forward: on 2026-03-08 New York's clocks go from 01:59:59 EST to 03:00 EDT,
  so 02:30 never happens) a wall time stands for the first instant at or after it: the jump itself
  (07:00 UTC, when the clocks show 03:00);
- **in a fold** (clocks go back: on 2026-11-01 New York shows 01:00-01:59 twice) a wall time stands for
  its first occurrence (`fold=0`: 01:30 EDT, 05:30 UTC), as "the first instant the clock shows it".

So a wall time is always the first instant at which the customer's clock reaches it, and a boundary
never disappears or happens twice. A local day starts at the first instant its date shows on the clock
(a 23-hour and a 25-hour day on the change days; a day that a zone skipped, as Pacific/Apia skipped
2011-12-30, starts and ends at the same instant) and a local week at the start of its Monday (ISO 8601).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# An IANA zone name as the tz database spells them: `Area/Location[/Sub]`, `UTC`, `Etc/GMT+7`.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}")
# Files in a tz directory that are no zone of their own (the machine's zone, a rules template).
_NOT_ZONES = {"localtime", "posixrules"}
UTC_ZONE = ZoneInfo("UTC")  # a shop that set no zone


def require_aware(instant: datetime, name: str = "instant") -> datetime:
    """`instant` if it is timezone-aware, else ValueError naming it (a naive time has no place in time)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {instant!r}")
    return instant


@lru_cache(maxsize=1)
def _names_by_lower_case() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones() if name.lower() not in _NOT_ZONES}


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    if len(name) > 64 or not _NAME.fullmatch(name) or name.lower() in _NOT_ZONES:
        return None
    for key in (name, _names_by_lower_case().get(name.lower())):
        if key is not None:
            try:
                return ZoneInfo(key)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                continue
    return None


def zone_named(name: str) -> ZoneInfo:
    """The zone called `name` (an IANA name, case forgiven); ValueError if there is none (for settings)."""
    zone = _zone(name.strip()) if isinstance(name, str) else None
    if zone is None:
        raise ValueError(f"not an IANA time zone name: {name!r}")
    return zone


def customer_zone(trait: object, *, shop: ZoneInfo) -> ZoneInfo:
    """The customer's zone: their `timezone` trait when it names one, else the shop's."""
    if isinstance(trait, str):
        zone = _zone(trait.strip())
        if zone is not None:
            return zone
    return shop


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """What the zone's clocks show at `instant` (naive)."""
    return require_aware(instant).astimezone(zone).replace(tzinfo=None, fold=0)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """The zone's calendar date at `instant`."""
    return wall(instant, zone).date()


def week_of(day: date) -> date:
    """The Monday that starts `day`'s ISO week."""
    return day - timedelta(days=day.weekday())


def _gap_end(shown: datetime, zone: ZoneInfo) -> datetime:
    """The instant a gap holding the wall time `shown` ends (clocks jump past it): the first whole second
    whose wall time is at or after `shown`. Transitions happen on whole seconds."""
    before = int(shown.replace(tzinfo=zone, fold=1).timestamp()) - 1  # with the offset after the jump: earlier
    after = int(shown.replace(tzinfo=zone, fold=0).timestamp()) + 1  # with the offset before it: later
    while after - before > 1:  # invariant: wall(before) < shown <= wall(after)
        middle = (before + after) // 2
        if wall(datetime.fromtimestamp(middle, UTC), zone) >= shown:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def _occurrence(shown: datetime, zone: ZoneInfo, fold: int) -> datetime:
    """The instant the clocks show `shown` (its `fold`-th occurrence in a fold; the gap's end in a gap)."""
    instant = shown.replace(tzinfo=zone, fold=fold).astimezone(UTC)
    if wall(instant, zone) == shown:
        return instant
    return _gap_end(shown, zone)


def first_instant(shown: datetime, zone: ZoneInfo, *, after: datetime | None = None) -> datetime:
    """The first instant at which the zone's clocks reach the naive wall time `shown` (see the module's
    rule for gaps and folds); with `after`, the first such instant later than `after` (the second
    occurrence of a fold's wall time when the first is past)."""
    if shown.tzinfo is not None:
        raise ValueError(f"a wall time is naive, got {shown!r}")
    for fold in (0, 1):
        instant = _occurrence(shown, zone, fold)
        if after is None or instant > after:
            return instant
    raise ValueError(f"{zone.key}'s clocks do not reach {shown.isoformat()} after {after!r}")


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of the local date `day` (UTC)."""
    return first_instant(datetime.combine(day, time()), zone)


def next_day_start(instant: datetime, zone: ZoneInfo) -> datetime:
    """When the local date that `instant` falls on ends: the start of a later date (UTC)."""
    return first_instant(datetime.combine(local_date(instant, zone) + timedelta(days=1), time()), zone,
                         after=require_aware(instant))


def next_week_start(instant: datetime, zone: ZoneInfo) -> datetime:
    """When the local ISO week that `instant` falls in ends: the start of the next Monday (UTC)."""
    monday = week_of(local_date(instant, zone)) + timedelta(days=7)
    return first_instant(datetime.combine(monday, time()), zone, after=require_aware(instant))
