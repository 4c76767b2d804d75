"""touchpoint.identify / touchpoint.signed_up with an email: release messages waiting for it.

A visitor's welcome is created while they are anonymous; the moment they give an address it
goes out, without waiting for their next stage change.
"""

from __future__ import annotations

from lifecycle_shared.events import CloudEvent, TouchpointData
from lifecycle_shared.kafka.runner import Emitted, PermanentError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import repository as repo


def email_of(touchpoint: TouchpointData) -> str | None:
    traits = {**touchpoint.context.get("traits", {}), **touchpoint.traits}
    email = traits.get("email")
    return email if isinstance(email, str) and "@" in email else None


async def handle_contact(conn: AsyncConnection, event: CloudEvent) -> Emitted:
    try:
        touchpoint = TouchpointData.model_validate(event.data)
    except ValidationError as error:
        raise PermanentError(f"touchpoint data invalid: {error.errors()[0]}") from None
    email = email_of(touchpoint)
    if email:
        linked_ids = [i for i in (touchpoint.userId, touchpoint.anonymousId) if i]
        await repo.release_awaiting(conn, [(linked_ids, event.subject, email)])
    return []
