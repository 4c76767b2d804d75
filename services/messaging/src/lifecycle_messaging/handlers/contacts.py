"""touchpoint.identify / touchpoint.signed_up with an email: remember the address and release the
messages waiting for it.

A visitor's welcome is created while they are anonymous; the moment they give an address it goes
out. The address is remembered too, so a transition that arrives after it (the topics are read
in no particular order relative to each other) is queued with it at once. A sign-up with both
ids also claims the anonymous id for the user, unless someone already did (a shared device).
"""

from __future__ import annotations

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import contacts
from lifecycle_messaging.domain.addresses import valid_address

IDENTIFY = "touchpoint.identify"
SIGNED_UP = "touchpoint.signed_up"


def email_of(touchpoint: TouchpointData) -> str | None:
    return valid_address(touchpoint.all_traits().get("email"))


async def handle_contacts(conn: AsyncConnection, events: list[Typed[TouchpointData]]) -> Emitted:
    touchpoints = [typed.data for typed in events]
    await contacts.claim(conn, {t.anonymousId: t.userId for t in touchpoints if t.anonymousId and t.userId},
                         authoritative=False)
    found: dict[str, contacts.Contact] = {}
    releases: list[contacts.Contact] = []
    for touchpoint in touchpoints:
        email = email_of(touchpoint)
        ids = [i for i in (touchpoint.userId, touchpoint.anonymousId) if i]
        if email and ids:
            contact = contacts.Contact(email=email, linked_ids=ids, user_id=touchpoint.userId)
            found.update(dict.fromkeys(ids, contact))
            releases.append(contact)
    await contacts.remember(conn, found)
    await contacts.release(conn, releases)
    return []
