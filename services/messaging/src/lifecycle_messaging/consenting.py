"""Consent at work (`domain.consent`): changes told by the API, the unsubscribe link, touchpoints and the
mail provider, applied in order with the service's clock; the unsubscribe links (`domain.unsubscribe`);
and the check the delivery worker makes when it claims a message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lifecycle_shared.events import CloudEvent, TouchpointData
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import consent, contacts, erasure, latest
from lifecycle_messaging.domain.addresses import valid_address
from lifecycle_messaging.domain.consent import EMAIL, MARKETING, SUBSCRIBED, TOUCHPOINT, change, may_send, purpose_of
from lifecycle_messaging.domain.erasure import lifts_marker
from lifecycle_messaging.domain.suppression import CONSENT, ERASED
from lifecycle_messaging.domain.unsubscribe import link, sign
from lifecycle_messaging.metrics import (
    CONSENT_CHANGES,
    CONSENT_CHANGES_REFUSED,
    CONSENT_UNRESOLVED,
    ERASURE_MARKERS_LIFTED,
    suppressed,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Told:
    """A consent change as told: to which address, by whom, about which message or event."""

    address: str
    state: str
    source: str
    explicit: bool = True  # see domain.consent.change
    reference: str | None = None
    customer_id: str | None = None
    at: datetime | None = None  # when the person told it (a touchpoint's time); None: now


async def tell(conn: AsyncConnection, told: Sequence[Told], *, now: datetime, channel: str = EMAIL,
               purpose: str = MARKETING, erasure_pepper: bytes | None = None) -> list[consent.Applied]:
    """Apply the changes in order, each against the state the one before left; record those that stand
    (counted by source and state; those that do not, counted as refused). With the `erasure_pepper`, an explicit
    opt-in made after an erasure lifts the erased address's suppression marker (`_lift_erasure_markers`). What
    stands, in order."""
    states: dict[str, str | None] = dict(await consent.states_of(
        conn, [t.address for t in told], channel=channel, purpose=purpose, lock=True))
    applied: list[consent.Applied] = []
    standing: list[tuple[Told, str | None]] = []  # each change told, and the state it left
    for t in told:
        current = states.get(t.address)
        new = change(current, t.state, source=t.source, explicit=t.explicit)
        if new is not None:
            states[t.address] = new
            applied.append(consent.Applied(t.address, new, current, t.source, t.reference, t.customer_id))
            CONSENT_CHANGES.labels(t.source, new).inc()
        elif t.state != current:
            CONSENT_CHANGES_REFUSED.labels(t.source, t.state).inc()
        standing.append((t, states.get(t.address)))
    await consent.record(conn, applied, channel=channel, purpose=purpose, at=now)
    if erasure_pepper and channel == EMAIL:
        await _lift_erasure_markers(conn, standing, pepper=erasure_pepper, now=now)
    return applied


async def _lift_erasure_markers(conn: AsyncConnection, standing: Sequence[tuple[Told, str | None]], *, pepper: bytes,
                                now: datetime) -> None:
    """Lift the suppression marker of each erased address a new explicit opt-in names (`domain.erasure.lifts_marker`),
    counted by source and logged with the erasure's id (never the address)."""
    opt_ins = [(t, state) for t, state in standing if t.state == SUBSCRIBED]
    markers = await erasure.markers_of(conn, sorted({t.address for t, _ in opt_ins}), pepper=pepper)
    lifted: dict[str, tuple[erasure.Marker, str]] = {}
    for t, state in opt_ins:
        marker = markers.get(t.address)
        if marker is not None and t.address not in lifted and lifts_marker(
                t.state, explicit=t.explicit, told_at=t.at or now, erased_at=marker.erased_at, standing=state):
            lifted[t.address] = (marker, t.source)
    await erasure.lift(conn, [marker for marker, _ in lifted.values()])
    for marker, source in lifted.values():
        ERASURE_MARKERS_LIFTED.labels(source).inc()
        log.info("erasure marker lifted", extra={"erasure_id": marker.erasure_id, "source": source})


@dataclass(frozen=True)
class Links:
    """Signed, expiring unsubscribe links (`<public_url>/v1/unsubscribe/<token>`), issued on the clock."""

    base_url: str
    key: bytes
    valid_for: timedelta
    clock: Callable[[], datetime]

    def for_message(self, message_id: str) -> str:
        return link(self.base_url, sign(message_id, secret=self.key, now=self.clock(), valid_for=self.valid_for))

    def for_template(self, template: str, message_id: str) -> str | None:
        """A marketing message's link; None for transactional mail (nothing to unsubscribe from)."""
        return self.for_message(message_id) if purpose_of(template) == MARKETING else None


async def suppress_without_consent(conn: AsyncConnection, claimed: Sequence[Any], *, require_opt_in: bool,
                                   erasure_pepper: bytes | None = None) -> set[str]:
    """Claimed messages (id, template, recipient) that may not go: to an erased address (an erasure's suppression
    marker, docs/erasure.md; any purpose), reason `erased`; marketing for lack of consent, reason `consent`. Marked
    suppressed, counted and logged (id, template, reason). Their ids."""
    marked = await _suppress_erased(conn, claimed, erasure_pepper) if erasure_pepper else set()
    claimed = [row for row in claimed if row.id not in marked]
    marketing = [row for row in claimed if purpose_of(row.template) == MARKETING]
    addresses = {row.id: valid_address(row.recipient) or (row.recipient or "") for row in marketing}
    states = await consent.states_of(conn, sorted(set(addresses.values())), channel=EMAIL, purpose=MARKETING)
    reasons = {row.id: CONSENT for row in marketing
               if not may_send(MARKETING, states.get(addresses[row.id]), require_opt_in=require_opt_in)}
    withheld = set(await latest.suppress(conn, reasons))
    for row in marketing:
        if row.id in withheld:
            suppressed(row.id, row.template, CONSENT)
    return marked | withheld


async def _suppress_erased(conn: AsyncConnection, claimed: Sequence[Any], pepper: bytes) -> set[str]:
    erased = await erasure.erased_addresses(conn, sorted({row.recipient for row in claimed if row.recipient}),
                                            pepper=pepper)
    marked = set(await latest.suppress(conn, {row.id: ERASED for row in claimed if row.recipient in erased}))
    for row in claimed:
        if row.id in marked:
            suppressed(row.id, row.template, ERASED)
    return marked


async def tell_touchpoints(conn: AsyncConnection, told: Sequence[tuple[CloudEvent, TouchpointData, str, bool]], *,
                           now: datetime, erasure_pepper: bytes | None = None) -> list[consent.Applied]:
    """Consent told by touchpoints (event, data, state, explicit), for the address each names (`email` in its
    traits or properties) or else the one known for its userId / anonymousId, told at the touchpoint's time. One
    naming no address messaging knows is counted (`lifecycle_messaging_consent_unresolved_total`) and changes
    nothing. `erasure_pepper`: see `tell`."""
    ids = sorted({i for _, t, _, _ in told for i in (t.userId, t.anonymousId) if i})
    known = await contacts.known(conn, ids)
    changes: list[Told] = []
    for event, touchpoint, state, explicit in told:
        address = valid_address(touchpoint.all_traits().get("email")) or valid_address(
            touchpoint.properties.get("email")) or next(
            (known[i].email for i in (touchpoint.userId, touchpoint.anonymousId) if i and i in known), None)
        if address is None:
            CONSENT_UNRESOLVED.labels(event.type).inc()
            continue
        changes.append(Told(address, state, TOUCHPOINT, explicit=explicit and touchpoint.verified,
                            reference=event.id, customer_id=touchpoint.userId or touchpoint.anonymousId,
                            at=touchpoint.timestamp))
    return await tell(conn, changes, now=now, erasure_pepper=erasure_pepper)
