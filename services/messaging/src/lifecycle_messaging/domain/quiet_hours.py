"""Quiet hours: the part of each night when no marketing message goes out, in the customer's time zone. Pure.

A window is two wall times, `start` and `end` (default `DEFAULT_QUIET_HOURS`, 21:00-08:00). Each local
date D has one quiet spell, from the first instant the customer's clock shows `start` on D to the first
instant it shows `end` - on D when `end` is after `start`, else on D + 1 (a window that crosses
midnight). `start == end` is the empty window: never quiet. Spells are half-open: quiet from `start`,
sending again at `end`. Transactional messages are the caller's to exempt (`domain.caps.allot` does).

A message that comes due inside a spell is held until it ends (`opens_at`), never dropped.

Boundaries follow `domain.local_time`'s rule: a wall time is the first instant the clock reaches it.
- A boundary in a spring-forward gap is the jump itself: with a window ending 02:30, New York's quiet
  spell on 2026-03-08 ends at 03:00 EDT (07:00 UTC), when the clocks leap past 02:30. A window lying
  wholly inside the gap (02:10-02:40) has no spell that night: those times never happen.
- A boundary in a fall-back fold is its first occurrence: a window ending 01:30 ends on 2026-11-01 at
  01:30 EDT (05:30 UTC); when the clocks show 01:00-01:30 again (EST) the spell is over and stays
  over, so the night is quiet once, not twice. A window starting at 01:30 starts at 01:30 EDT and runs
  through the repeated hour.
The default window's boundaries (21:00, 08:00) are in no gap or fold of any zone today; the quiet
spell itself is an hour shorter or longer on the change nights (10 or 12 hours in New York), as the
customer's own night is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from lifecycle_messaging.domain.local_time import first_instant, local_date, require_aware

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class QuietHours:
    """Quiet from `start` to `end`, in the customer's wall time; `start == end`: never quiet."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours are wall times in the customer's zone: give them without a zone")

    @property
    def empty(self) -> bool:
        return self.start == self.end

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """`"21:00-08:00"` (24-hour `HH:MM-HH:MM`); `""` or `"off"`: the empty window. ValueError otherwise."""
        cleaned = text.strip().lower()
        if cleaned in ("", "off", "none"):
            return NEVER
        parts = [p.strip() for p in cleaned.split("-")]
        matches = [_HHMM.fullmatch(p) for p in parts]
        if len(parts) != 2 or not all(matches):
            raise ValueError(f"quiet hours must read HH:MM-HH:MM (e.g. 21:00-08:00) or off, got {text!r}")
        start, end = (time(int(m.group(1)), int(m.group(2))) for m in matches if m is not None)
        return cls(start, end)

    def __str__(self) -> str:
        return "off" if self.empty else f"{self.start:%H:%M}-{self.end:%H:%M}"


DEFAULT_QUIET_HOURS = QuietHours(time(21, 0), time(8, 0))
NEVER = QuietHours(time(0), time(0))


def spell(night: date, zone: ZoneInfo, window: QuietHours) -> tuple[datetime, datetime] | None:
    """The quiet spell starting on local date `night`, as UTC instants [start, end); None if there is none
    (the empty window, or a window the clocks skip that night)."""
    if window.empty:
        return None
    end_day = night + timedelta(days=1) if window.crosses_midnight else night
    begins = first_instant(datetime.combine(night, window.start), zone)
    ends = first_instant(datetime.combine(end_day, window.end), zone)
    return (begins, ends) if begins < ends else None


def _spell_holding(instant: datetime, zone: ZoneInfo, window: QuietHours) -> tuple[datetime, datetime] | None:
    """A quiet spell that `instant` is inside, if any. Only spells of the nights around its local date
    can hold it (a spell lasts under 25 hours)."""
    today = local_date(instant, zone)
    for offset in (-1, 0, 1):
        found = spell(today + timedelta(days=offset), zone, window)
        if found is not None and found[0] <= instant < found[1]:
            return found
    return None


def is_quiet(instant: datetime, zone: ZoneInfo, window: QuietHours) -> bool:
    """Whether `instant` falls inside a quiet spell of the customer's zone."""
    return _spell_holding(require_aware(instant, "instant"), zone, window) is not None


def opens_at(now: datetime, zone: ZoneInfo, window: QuietHours) -> datetime | None:
    """None when a marketing message may go out at `now`; else the UTC instant the quiet hours end (hold
    the message until then). Spells that touch or overlap (a window of nearly a whole day, on a
    fall-back night) are held through as one."""
    held = require_aware(now, "now")
    for _ in range(4):  # consecutive spells overlap at most pairwise: a few steps always suffice
        found = _spell_holding(held, zone, window)
        if found is None:
            return None if held == now else held
        held = found[1]
    raise AssertionError(f"quiet hours {window} never open in {zone.key} after {now.isoformat()}")
