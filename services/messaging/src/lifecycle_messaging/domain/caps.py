"""Frequency caps: how many marketing messages a customer receives per local day and per local week. Pure.

Caps (`Caps`, default `DEFAULT_CAPS`: 1 a day, 3 a week; either may be None, no cap) count the marketing
messages the customer was **sent** (accepted by the SMTP server): a message held, deferred, suppressed,
failed or held out does not count, and transactional messages are exempt - they are neither capped nor
counted. The caller passes the instants of the customer's sent marketing messages (those of every key
merged into the customer: one person, one budget).

Days and weeks are the customer's (`domain.local_time`): a local calendar day, from the first instant
its date shows on their clock, so New York's 2026-03-08 lasts 23 hours and 2026-11-01 25; and the ISO
week, starting on the start of the local Monday. A send counts in the day and week its instant falls
in by the customer's clock (in their zone now).

A capped message is deferred, never silently dropped: `frees_at` gives the instant the cap lets it go
(the start of the next local day, or of the next local week when the week is full). When several
messages compete for one customer's budget at one moment, `allot` sends the highest `priority` first
(ties: the oldest transition, then the message id) and defers the others to the next opening -
quiet hours included when the window is given, so the worker wakes once.

A deferral that would leave a message waiting more than `MAX_DEFERRAL` (8 days) after it came due is a
suppression instead, with reason `frequency_cap`. Eight days is the longest a message that loses only
once to a full week can wait: the rest of the week (at most 7 days and 1 hour, a fall-back week) plus
the next Monday's quiet hours (at most 24 hours less a minute, in practice 8). A message still
outbid after that lost its moment to higher-priority ones twice over.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from lifecycle_messaging.domain.local_time import (
    local_date,
    next_day_start,
    next_week_start,
    require_aware,
    week_of,
)
from lifecycle_messaging.domain.quiet_hours import QuietHours, opens_at
from lifecycle_messaging.domain.suppression import FREQUENCY_CAP as FREQUENCY_CAP  # the suppression reason

MAX_DEFERRAL = timedelta(days=8)


@dataclass(frozen=True)
class Caps:
    """At most `per_day` marketing messages per local day and `per_week` per local ISO week; None: no cap."""

    per_day: int | None = 1
    per_week: int | None = 3

    def __post_init__(self) -> None:
        for name, cap in (("per_day", self.per_day), ("per_week", self.per_week)):
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
                raise ValueError(f"frequency cap {name} must be a whole number of at least 1 or None, got {cap!r}")


DEFAULT_CAPS = Caps(per_day=1, per_week=3)
UNCAPPED = Caps(per_day=None, per_week=None)


@dataclass(frozen=True)
class Counts:
    """Sent marketing messages per local date and per local week (keyed by its Monday)."""

    days: Mapping[date, int]
    weeks: Mapping[date, int]


def counts(sent: Iterable[datetime], zone: ZoneInfo) -> Counts:
    """How many of `sent` fall on each of the customer's local days and weeks."""
    days = Counter(local_date(require_aware(instant, "a sent message's instant"), zone) for instant in sent)
    weeks: Counter[date] = Counter()
    for day, n in days.items():
        weeks[week_of(day)] += n
    return Counts(dict(days), dict(weeks))


def _frees_at(now: datetime, zone: ZoneInfo, tally: Counts, caps: Caps) -> datetime | None:
    at = now
    for _ in range(len(tally.days) + 8):  # each step passes a day or week holding sends, or the cap frees
        day = local_date(at, zone)
        if caps.per_week is not None and tally.weeks.get(week_of(day), 0) >= caps.per_week:
            at = next_week_start(at, zone)
        elif caps.per_day is not None and tally.days.get(day, 0) >= caps.per_day:
            at = next_day_start(at, zone)
        else:
            return None if at == now else at
    raise AssertionError("the caps never free")  # unreachable: sends are finite, caps at least 1


def frees_at(now: datetime, zone: ZoneInfo, sent: Iterable[datetime], caps: Caps = DEFAULT_CAPS) -> datetime | None:
    """None when one more marketing message may go out at `now`; else the UTC instant the caps first
    allow it: the start of the next local day (day full) or week (week full), or later if that one is
    full too (sends already counted there)."""
    return _frees_at(require_aware(now, "now"), zone, counts(sent, zone), caps)


def next_opening(now: datetime, zone: ZoneInfo, sent: Iterable[datetime], caps: Caps = DEFAULT_CAPS,
                 quiet: QuietHours | None = None) -> datetime:
    """The first instant at or after `now` at which a marketing message may go out: outside quiet hours
    (when a window is given) and within the caps. `now` itself when it may go out now."""
    tally = counts(sent, zone)
    at = require_aware(now, "now")
    for _ in range(len(tally.days) + 16):
        held = opens_at(at, zone, quiet) if quiet is not None else None
        at = held or at
        capped = _frees_at(at, zone, tally, caps)
        if capped is None:
            return at
        at = capped
    raise AssertionError("quiet hours and caps never both open")  # unreachable: each step moves a day on


@dataclass(frozen=True)
class Candidate:
    """A message waiting to go to the customer: its id, its campaign's priority (higher goes first), the
    time of the transition (or touchpoint) that caused it, when it came due (its delay over, or queued),
    and whether it is transactional."""

    message_id: str
    priority: int
    transition_at: datetime
    due_at: datetime
    transactional: bool = False

    @property
    def rank(self) -> tuple[int, datetime, str]:
        """Sorting key: higher priority, then older transition, then id."""
        return -self.priority, self.transition_at, self.message_id


Action = Literal["send", "defer", "suppress"]


@dataclass(frozen=True)
class Decision:
    """What becomes of one candidate: `send` now; `defer` until `until`; `suppress` (reason `reason`)."""

    message_id: str
    action: Action
    until: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Allotment:
    """Every candidate's decision, in rank order (the order to send them in)."""

    decisions: tuple[Decision, ...]

    @property
    def send(self) -> tuple[str, ...]:
        return tuple(d.message_id for d in self.decisions if d.action == "send")

    @property
    def deferred(self) -> dict[str, datetime]:
        return {d.message_id: d.until for d in self.decisions if d.action == "defer" and d.until is not None}

    @property
    def suppressed(self) -> tuple[str, ...]:
        return tuple(d.message_id for d in self.decisions if d.action == "suppress")


def allot(candidates: Sequence[Candidate], *, now: datetime, zone: ZoneInfo, sent: Iterable[datetime],
          caps: Caps = DEFAULT_CAPS, quiet: QuietHours | None = None,
          max_deferral: timedelta = MAX_DEFERRAL) -> Allotment:
    """Which of the customer's due messages go out at `now`, in which order, and until when the others wait.

    Transactional messages go at once and use no budget. Marketing ones, best rank first, take the
    budget the caps leave at `now` (none when `now` is inside the quiet hours of `quiet`); the rest are
    deferred to the next opening (after the ones sent now are counted) - where they compete again, so
    the highest-ranked waiting message goes first then too - or suppressed with reason `frequency_cap`
    when the caps keep them waiting beyond `max_deferral` after they came due."""
    now = require_aware(now, "now")
    history = list(sent)
    quiet_now = quiet is not None and opens_at(now, zone, quiet) is not None
    decisions: list[Decision] = []
    for candidate in sorted(candidates, key=lambda c: c.rank):
        if candidate.transactional:
            decisions.append(Decision(candidate.message_id, "send"))
            continue
        if not quiet_now and frees_at(now, zone, history, caps) is None:
            decisions.append(Decision(candidate.message_id, "send"))
            history.append(now)
            continue
        until = next_opening(now, zone, history, caps, quiet)
        capped = frees_at(now, zone, history, caps) is not None
        if capped and until - require_aware(candidate.due_at, "due_at") > max_deferral:
            decisions.append(Decision(candidate.message_id, "suppress", reason=FREQUENCY_CAP))
        else:
            decisions.append(Decision(candidate.message_id, "defer", until=until))
    return Allotment(tuple(decisions))
