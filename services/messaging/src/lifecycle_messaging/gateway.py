"""The gateway at work (docs/messaging.md "The gateway"): after consent, what becomes of each claimed
marketing message - held out (`domain.holdout`), held through quiet hours, deferred or suppressed by the
frequency caps (`domain.caps.allot`) - with the service's clock. Transactional messages pass untouched.

A campaign is, for now, the message's template (there is no campaign entity yet): its id is the template
name, its holdout share `holdout_share`, its priority the same for all (ties go to the older transition).
The person is the message's customer key; the recorded assignment (append-only, the first stands, the
survivor's after a merge) is authoritative, the hash only makes the first one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

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


async def hold_out(conn: AsyncConnection, marketing: Sequence[Any], settings: MessagingSettings,
                   now: datetime) -> set[str]:
    """Marketing messages to people in their campaign's holdout: suppressed, reason `holdout`. Their ids."""
    pairs = {(row.template, row.customer_id) for row in marketing}
    groups = await gateway.assignments(conn, pairs)
    first = {pair: assign(*pair, settings.holdout_share) for pair in sorted(pairs - set(groups))}
    groups |= await gateway.assign(conn, first, at=now)
    reasons = {row.id: HOLDOUT_REASON for row in marketing if groups.get((row.template, row.customer_id)) == HOLDOUT}
    marked = set(await latest.suppress(conn, reasons))
    for row in marketing:
        if row.id in marked:
            suppressed(row.id, row.template, HOLDOUT_REASON)
    return marked


async def pace(conn: AsyncConnection, marketing: Sequence[Any], settings: MessagingSettings,
               now: datetime) -> Gated:
    """Quiet hours and frequency caps, per customer in their zone: deferred messages held until their
    opening (their attempt given back), those the caps would keep too long suppressed `frequency_cap`."""
    by_customer: dict[str, list[Any]] = {}
    for row in marketing:
        by_customer.setdefault(row.customer_id, []).append(row)
    sent = await gateway.sent_since(conn, sorted(by_customer), since=now - _LOOK_BACK)
    until: dict[str, datetime] = {}
    reasons: dict[str, str] = {}
    for customer, rows in by_customer.items():
        trait = next((row.timezone for row in reversed(rows) if row.timezone), None)
        zone = customer_zone(trait, shop=settings.shop_zone)
        history = [at for template, at in sent.get(customer, []) if purpose_of(template) == MARKETING]
        candidates = [Candidate(row.id, priority=0, transition_at=row.event_time or row.created_at,
                                due_at=row.due_at or now) for row in rows]
        allotment = allot(candidates, now=now, zone=zone, sent=history, caps=settings.caps, quiet=settings.quiet,
                          max_deferral=MAX_DEFERRAL)
        until |= allotment.deferred
        reasons |= dict.fromkeys(allotment.suppressed, FREQUENCY_CAP)
    marked = set(await latest.suppress(conn, reasons))
    held = set(await gateway.hold(conn, until, now=now))
    for row in marketing:
        if row.id in marked:
            suppressed(row.id, row.template, FREQUENCY_CAP)
        elif row.id in held:
            log.info("message held", extra={"message_id": row.id, "template": row.template,
                                            "until": until[row.id].isoformat()})
    return Gated(marked, {message_id: until[message_id] for message_id in held})


async def gate(conn: AsyncConnection, claimed: Sequence[Any], settings: MessagingSettings, now: datetime) -> Gated:
    """The gateway's steps after consent, in order: holdout, then quiet hours and caps (together: one wake-up)."""
    marketing = [row for row in claimed if purpose_of(row.template) == MARKETING]
    held_out = await hold_out(conn, marketing, settings, now)
    paced = await pace(conn, [row for row in marketing if row.id not in held_out], settings, now)
    return Gated(held_out | paced.suppressed, paced.held)
