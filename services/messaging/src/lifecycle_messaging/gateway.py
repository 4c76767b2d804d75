"""The gateway at work (docs/messaging.md "The gateway"): after consent, what becomes of each claimed
marketing message - held out (`domain.holdout`), held through quiet hours, deferred or suppressed by the
frequency caps (`domain.caps.allot`) - with the service's clock. Transactional messages pass untouched.

Each message's campaign (`messages.campaign`, the version it records: `CampaignBook.made`) gives its holdout
share (the campaign's own, else `holdout_share`, the shop's default) and its priority (ties go to the older
cause). A message of no campaign the book knows (the operator's notices are transactional anyway) takes the
shop's share and priority 0. The person is the message's customer key; the recorded assignment (append-only,
the first stands, the survivor's after a merge) is authoritative, the hash only makes the first one.

The caps are judged under a per-customer lock (`db.gateway.lock_customers`, held until the claim commits) and
count, besides what was sent, what another worker has let go and is sending now (`allotted_at`): two workers
claiming two messages of one customer at once never both spend the same budget.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.db import gateway, latest
from lifecycle_messaging.domain.caps import MAX_DEFERRAL, Candidate, allot
from lifecycle_messaging.domain.consent import MARKETING, purpose_of
from lifecycle_messaging.domain.holdout import HOLDOUT, assign
from lifecycle_messaging.domain.local_time import customer_zone
from lifecycle_messaging.domain.suppression import FREQUENCY_CAP
from lifecycle_messaging.domain.suppression import HOLDOUT as HOLDOUT_REASON
from lifecycle_messaging.metrics import suppressed
from lifecycle_messaging.settings import MessagingSettings

log = logging.getLogger(__name__)

# The sends the caps look back over: a full ISO week in any zone, and then some.
_LOOK_BACK = timedelta(days=15)


@dataclass(frozen=True)
class Gated:
    """The claimed messages the gateway took out of this round: suppressed (with a reason) or held."""

    suppressed: set[str]
    held: dict[str, datetime]

    @property
    def ids(self) -> set[str]:
        return self.suppressed | set(self.held)


def _share(row: Any, book: CampaignBook, default: float) -> float:
    campaign = book.made(row.campaign, row.campaign_version)
    return default if campaign is None else campaign.share(default)


def _priority(row: Any, book: CampaignBook) -> int:
    campaign = book.made(row.campaign, row.campaign_version)
    return 0 if campaign is None else campaign.priority


async def hold_out(conn: AsyncConnection, marketing: Sequence[Any], settings: MessagingSettings, now: datetime,
                   book: CampaignBook) -> set[str]:
    """Marketing messages to people in their campaign's holdout: suppressed, reason `holdout`. Their ids."""
    shares = {(row.campaign, row.customer_id): _share(row, book, settings.holdout_share) for row in marketing}
    groups = await gateway.assignments(conn, shares)
    first = {pair: assign(*pair, share) for pair, share in sorted(shares.items()) if pair not in groups}
    groups |= await gateway.assign(conn, first, at=now)
    reasons = {row.id: HOLDOUT_REASON for row in marketing if groups.get((row.campaign, row.customer_id)) == HOLDOUT}
    marked = set(await latest.suppress(conn, reasons))
    for row in marketing:
        if row.id in marked:
            suppressed(row.id, row.template, HOLDOUT_REASON, campaign=row.campaign)
    return marked


async def pace(conn: AsyncConnection, marketing: Sequence[Any], settings: MessagingSettings, now: datetime,
               book: CampaignBook) -> Gated:
    """Quiet hours and frequency caps, per customer in their zone: deferred messages held until their
    opening (their attempt given back), those the caps would keep too long suppressed `frequency_cap`; the
    ones let go marked as being sent (counted by a concurrent worker's caps)."""
    by_customer: dict[str, list[Any]] = {}
    for row in marketing:
        by_customer.setdefault(row.customer_id, []).append(row)
    await gateway.lock_customers(conn, sorted(by_customer))
    sent = await gateway.sent_since(conn, sorted(by_customer), since=now - _LOOK_BACK,
                                    judging=[row.id for row in marketing])
    until: dict[str, datetime] = {}
    reasons: dict[str, str] = {}
    going: list[str] = []
    for customer, rows in by_customer.items():
        trait = next((row.timezone for row in reversed(rows) if row.timezone), None)
        zone = customer_zone(trait, shop=settings.shop_zone)
        history = [at for template, at in sent.get(customer, []) if purpose_of(template) == MARKETING]
        candidates = [Candidate(row.id, priority=_priority(row, book), transition_at=row.event_time or row.created_at,
                                due_at=row.due_at or now) for row in rows]
        allotment = allot(candidates, now=now, zone=zone, sent=history, caps=settings.caps, quiet=settings.quiet,
                          max_deferral=MAX_DEFERRAL)
        until |= allotment.deferred
        reasons |= dict.fromkeys(allotment.suppressed, FREQUENCY_CAP)
        going += allotment.send
    marked = set(await latest.suppress(conn, reasons))
    held = set(await gateway.hold(conn, until, now=now))
    await gateway.allot(conn, going, at=now)
    for row in marketing:
        if row.id in marked:
            suppressed(row.id, row.template, FREQUENCY_CAP, campaign=row.campaign)
        elif row.id in held:
            log.info("message held", extra={"message_id": row.id, "template": row.template, "campaign": row.campaign,
                                            "until": until[row.id].isoformat()})
    return Gated(marked, {message_id: until[message_id] for message_id in held})


async def gate(conn: AsyncConnection, claimed: Sequence[Any], settings: MessagingSettings, now: datetime,
               book: CampaignBook) -> Gated:
    """The gateway's steps after consent, in order: holdout, then quiet hours and caps (together: one wake-up)."""
    marketing = [row for row in claimed if purpose_of(row.template) == MARKETING]
    held_out = await hold_out(conn, marketing, settings, now, book)
    paced = await pace(conn, [row for row in marketing if row.id not in held_out], settings, now, book)
    return Gated(held_out | paced.suppressed, paced.held)
