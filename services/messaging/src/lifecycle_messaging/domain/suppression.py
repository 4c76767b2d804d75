"""Whether a message still follows where its customer stands, or is suppressed (and why). Pure.

A message is about a transition. It goes out only while that transition is the customer's latest
one messaging has seen and is still news:
- `superseded`: a later transition of the same customer (after alias/merge resolution) arrived
  before the message left - the customer has moved on, e.g. a welcome to someone who has bought twice;
- `stale`: the transition is older than the freshness window (`LIFECYCLE_MESSAGING_FRESHNESS_S`)
  - a backlog caught up late is not news;
- `consent`: a marketing message to an address whose consent does not allow it (`domain.consent`),
  judged when the delivery worker claims it;
- `erased`: its customer was erased while it waited, or its address carries an erasure's suppression marker
  (`db.erasure`), judged when the delivery worker claims it, whatever the message's purpose;
- `cancelled`, `audience`, `campaign_disabled`: its campaign's conditions no longer hold when it is due
  (`campaigning.py`): the customer did what cancels it (the cart was bought), is no longer in the audience,
  or the campaign was disabled or deleted.

Only a message a stage transition started is about where the customer stands, so only such a message is
`superseded`; one a touchpoint or a loyalty event started (the cart reminder) is judged by its age alone. A
delayed message (a campaign's `delay_hours`) is news from the end of its delay, not from its cause: its age is
taken less the delay (`judged_at`'s caller subtracts `delay_of`).

Transitions are ordered by their event time, then by when the stage engine decided them
(`processed_at`), then by arrival: of two transitions equal on both, the one that arrived later is
the latest (a customer's transitions travel in one partition, in the order the stage engine emitted
them). Transitions may arrive late or out of order: only the order decides, never the arrival alone.

The decision is the same at queue time (a batch holding several transitions of one customer) and at
claim time (the delivery worker, just before sending). Suppressed messages are recorded with their
reason, never silently dropped. The gateway adds `holdout` (`domain.holdout`) and `frequency_cap`
(`domain.caps`); a message held by quiet hours or the caps is aged without that wait (`judged_at`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

SUPPRESSED = "suppressed"
SUPERSEDED = "superseded"
STALE = "stale"
CONSENT = "consent"
HOLDOUT = "holdout"  # the person is in the campaign's holdout (`domain.holdout`): never sent
FREQUENCY_CAP = "frequency_cap"  # the caps would keep it waiting too long (`domain.caps`)
CANCELLED = "cancelled"  # the customer did what its campaign's `cancelled_by` names, after its cause
AUDIENCE = "audience"  # the customer is no longer in its campaign's audience
CAMPAIGN_DISABLED = "campaign_disabled"  # its campaign was disabled or deleted while it waited
ERASED = "erased"  # its customer was erased, or its address was (docs/erasure.md): never sent
# Every reason a message may be suppressed for (metrics' `reason` label values, pre-initialised).
REASONS = (SUPERSEDED, STALE, CONSENT, HOLDOUT, FREQUENCY_CAP, CANCELLED, AUDIENCE, CAMPAIGN_DISABLED, ERASED)
# The trigger of a message about a stage transition (`domain.triggers`; NULL on rows from before campaigns).
STAGE_TRIGGER = "stage_changed"


@dataclass(frozen=True)
class Position:
    """A transition's place in its customer's history: its time, when the stage engine decided it,
    and its id (the `lifecycle.stage_changed` event id, a message's `cause_event_id`)."""

    event_time: datetime
    processed_at: datetime
    transition_id: str

    @property
    def order(self) -> tuple[datetime, datetime]:
        return self.event_time, self.processed_at


def takes_over(arriving: Position, latest: Position | None) -> bool:
    """Whether a transition arriving now becomes the latest, in place of `latest` (seen before it):
    it is later, or equal and arrived later. (`db.latest.record` states the same in SQL.)"""
    return latest is None or arriving.order >= latest.order


def latest_after(latest: Mapping[str, Position], arrivals: Iterable[tuple[str, Position]]) -> dict[str, Position]:
    """Each customer's latest transition once `arrivals` (customer, position; in arrival order) are seen."""
    result = dict(latest)
    for customer, position in arrivals:
        if takes_over(position, result.get(customer)):
            result[customer] = position
    return result


def suppression(message: Position, *, latest: Position | None, now: datetime, freshness: timedelta) -> str | None:
    """The reason a message about `message` is not sent, given its customer's latest transition seen;
    None: send it. Superseded comes first: a newer transition says more than the age of this one."""
    if latest is not None and latest.transition_id != message.transition_id and latest.order >= message.order:
        return SUPERSEDED
    if now - message.event_time > freshness:
        return STALE
    return None


def about_a_transition(trigger: str | None) -> bool:
    """Whether a message is about a stage transition (and so may be superseded by a later one)."""
    return trigger in (None, STAGE_TRIGGER)


def delay_of(event_time: datetime, not_before: datetime | None) -> timedelta:
    """A delayed message's delay: from its cause to when it comes due (none: zero)."""
    return max(not_before - event_time, timedelta(0)) if not_before is not None else timedelta(0)


def judged_at(now: datetime, *, due_at: datetime | None, held_until: datetime | None) -> datetime:
    """The instant a message's age is measured at: `now`, less the wait the gateway itself imposed (quiet
    hours, frequency caps) - from when it first came due (`due_at`) to the opening it was last held until,
    or to `now` while that has not come. A message never held: `now`."""
    if due_at is None or held_until is None:
        return now
    return now - max(min(now, held_until) - due_at, timedelta(0))
