"""Campaigns at send time: what the delivery worker does with a claimed message before the gateway.

- **Not due yet** (`put_back_early`): a delayed message claimed before the end of its delay (`not_before`, on the
  service's clock) goes back to wait until then, the claim's attempt given back. The delay is a time in the
  database, not a sleep: it survives restarts, and any instance sends the message when it comes due.
- **Its campaign's conditions** (`suppress_off_campaign`), judged when it is due, each a suppression with its
  reason, counted and logged (message id, campaign, reason, and what the reason is about):
  - `campaign_disabled`: its campaign was disabled or deleted meanwhile;
  - `cancelled`: the customer did one of the campaign's `cancelled_by` events after the message's cause (the
    cart was bought: `Order Completed` after `Product Added`);
  - `audience`: the customer is no longer in the audience. Judged again on what messaging has learned since
    (the latest transition's profile): a field it knows nothing about keeps the answer it had when the message
    was queued, and what the trigger itself told (a loyalty event's tier and points) is not judged again.
  The conditions are those of the version that made the message; the enabled flag is the campaign's now.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.db import last_events, latest
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.domain.audience import Profile, failing, value_of
from lifecycle_messaging.domain.campaigns import Campaign
from lifecycle_messaging.domain.suppression import AUDIENCE, CAMPAIGN_DISABLED, CANCELLED
from lifecycle_messaging.domain.triggers import LoyaltyTrigger
from lifecycle_messaging.metrics import suppressed

# What a loyalty trigger tells itself, never judged again from the profile.
_TOLD_BY_LOYALTY = frozenset({"tier", "points"})


async def put_back_early(conn: AsyncConnection, claimed: Sequence[Any], now: datetime) -> set[str]:
    """Claimed messages whose delay is not over at `now`: due again at its end. Their ids."""
    until = {row.id: row.not_before for row in claimed if row.not_before is not None and row.not_before > now}
    return set(await repo.not_yet_due(conn, until))


def _rejudged(campaign: Campaign, profile: Profile) -> list[str]:
    """The audience conditions the customer fails now, on what is known of them now (see the module)."""
    told = _TOLD_BY_LOYALTY if isinstance(campaign.spec.trigger, LoyaltyTrigger) else frozenset()
    judged = [c for c in campaign.spec.audience if c.field not in told and value_of(c.field, profile) is not None]
    return [f"{c.field} {c.op}" for c in failing(judged, profile)]


def verdict(row: Any, made: Campaign | None, current: Campaign | None, *, cancelled_at: dict[str, datetime],
            profile: Profile | None) -> tuple[str, str] | None:
    """Why a claimed message of campaign version `made` may no longer go (reason, detail), None if it may.
    `current`: the campaign's version in force (None: deleted); `cancelled_at`: when the customer last did each
    event type; `profile`: what is known of the customer now (None: nothing)."""
    if made is None:  # no campaign known for it (the operator's notices)
        return None
    if current is None or not current.enabled:
        return CAMPAIGN_DISABLED, "deleted" if current is None else "disabled"
    for event_type in sorted(made.cancelling_types):
        at = cancelled_at.get(event_type)
        if at is not None and row.event_time is not None and at > row.event_time:
            return CANCELLED, event_type
    if profile is not None and made.spec.audience and (failed := _rejudged(made, profile)):
        return AUDIENCE, ", ".join(failed)
    return None


async def suppress_off_campaign(conn: AsyncConnection, claimed: Sequence[Any], book: CampaignBook) -> set[str]:
    """Claimed messages whose campaign's conditions no longer hold: suppressed with the reason. Their ids."""
    await book.load(conn, claimed)
    made = {row.id: book.made(row.campaign, row.campaign_version) for row in claimed}
    if any(m is not None and ((now := book.get(m.id)) is None or now.version < m.version) for m in made.values()):
        await book.reload(conn)  # made by a version this book has not read yet (another instance's change)
    judged = [row for row in claimed if made[row.id] is not None]
    pairs = {(row.customer_id, t) for row in judged for t in made[row.id].cancelling_types}  # type: ignore[union-attr]
    last = await last_events.last_of(conn, pairs)
    profiles = await latest.profiles_of(conn, sorted({row.customer_id for row in judged
                                                      if made[row.id].spec.audience}))  # type: ignore[union-attr]
    reasons: dict[str, tuple[str, str]] = {}
    for row in judged:
        cancelled_at = {t: at for (customer, t), at in last.items() if customer == row.customer_id}
        found = verdict(row, made[row.id], book.get(row.campaign), cancelled_at=cancelled_at,
                        profile=profiles.get(row.customer_id))
        if found is not None:
            reasons[row.id] = found
    marked = set(await latest.suppress(conn, {message_id: reason for message_id, (reason, _) in reasons.items()}))
    for row in judged:
        if row.id in marked:
            suppressed(row.id, row.template, reasons[row.id][0], campaign=row.campaign, detail=reasons[row.id][1])
    return marked
