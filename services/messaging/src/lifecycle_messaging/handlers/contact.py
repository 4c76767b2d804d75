"""touchpoint.identify / touchpoint.signed_up with an email: remember the address and release the
messages waiting for it.

A visitor's welcome is created while they are anonymous; the moment they give an address it goes
out. The address is remembered too, so a transition that arrives after it (the topics are read
in no particular order relative to each other) is queued with it at once.
"""

from __future__ import annotations

from lifecycle_shared.events import CloudEvent, TouchpointData, data_as
from lifecycle_shared.kafka.runner import Emitted
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.domain.addresses import valid_address


def email_of(touchpoint: TouchpointData) -> str | None:
    traits = {**touchpoint.context.get("traits", {}), **touchpoint.traits}
    return valid_address(traits.get("email"))


async def handle_contacts(conn: AsyncConnection, events: list[CloudEvent]) -> Emitted:
    found: dict[str, repo.Contact] = {}
    for event in events:
        touchpoint = data_as(TouchpointData, event)
        email = email_of(touchpoint)
        ids = [i for i in (touchpoint.userId, touchpoint.anonymousId) if i]
        if email and ids:
            found.update(dict.fromkeys(ids, (email, ids)))
    await repo.remember_contacts(conn, found)
    await repo.release_awaiting(conn, list(found.values()))
    return []
