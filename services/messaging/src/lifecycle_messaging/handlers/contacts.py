"""touchpoint.identify / touchpoint.signed_up with an email: remember the address and release the
messages waiting for it.

A visitor's welcome is created while they are anonymous; the moment they give an address it goes
out. The address is remembered too, so a transition that arrives after it (the topics are read
in no particular order relative to each other) is queued with it at once. A sign-up with both
ids also claims the anonymous id for the user, unless someone already did (a shared device).

An unverified touchpoint (a write key's, without identity verification: any browser can name any userId) may
give an address to an id that has none, never replace one (`lifecycle_shared.trust`): otherwise a browser could
send a customer's next email to itself. A verified one (a server key, a valid `context.userHash`) may.

Traits that tell about marketing email (`unsubscribed`, `emailOptIn`: `domain.consent.state_from_traits`)
change the address's consent once the address is remembered: a no always stands; a yes only where nothing
is recorded yet (traits come again with every identify, and may lag behind an unsubscribe).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from lifecycle_shared.trust import may_set_contact
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.consenting import tell_touchpoints
from lifecycle_messaging.db import contacts
from lifecycle_messaging.domain.addresses import valid_address
from lifecycle_messaging.domain.consent import state_from_traits
from lifecycle_messaging.metrics import CONTACT_CHANGES_REFUSED

IDENTIFY = "touchpoint.identify"
SIGNED_UP = "touchpoint.signed_up"


def email_of(touchpoint: TouchpointData) -> str | None:
    return valid_address(touchpoint.all_traits().get("email"))


def ids_of(touchpoint: TouchpointData) -> list[str]:
    return [i for i in (touchpoint.userId, touchpoint.anonymousId) if i]


async def handle_contacts(conn: AsyncConnection, events: list[Typed[TouchpointData]], *,
                          clock: Callable[[], datetime] | None = None) -> Emitted:
    touchpoints = [typed.data for typed in events]
    await contacts.claim(conn, {t.anonymousId: t.userId for t in touchpoints if t.anonymousId and t.userId},
                         authoritative=False)
    given = [(touchpoint, email, ids) for touchpoint in touchpoints
             if (email := email_of(touchpoint)) and (ids := ids_of(touchpoint))]
    held = {customer_id: contact.email for customer_id, contact in
            (await contacts.known(conn, sorted({i for t, _, ids in given if not t.verified for i in ids}))).items()}
    found: dict[str, contacts.Contact] = {}  # verified: replaces what is held
    filled: dict[str, contacts.Contact] = {}  # unverified: only where nothing is held
    releases: list[contacts.Contact] = []
    for touchpoint, email, ids in given:
        allowed = [i for i in ids if may_set_contact(held.get(i), email, verified=touchpoint.verified)]
        if len(allowed) < len(ids):
            CONTACT_CHANGES_REFUSED.labels("unverified").inc()
        if not allowed:
            continue
        contact = contacts.Contact(email=email, linked_ids=allowed, user_id=touchpoint.userId)
        held.update(dict.fromkeys(allowed, email))
        (found if touchpoint.verified else filled).update(dict.fromkeys(allowed, contact))
        releases.append(contact)
    await contacts.remember(conn, {i: c for i, c in filled.items() if i not in found}, replace=False)
    await contacts.remember(conn, found)
    await contacts.release(conn, releases)
    if clock is not None and (told := [(typed.event, typed.data, state, False) for typed in events
                                       if (state := state_from_traits(typed.data.all_traits()))]):
        await tell_touchpoints(conn, told, now=clock())
    return []
