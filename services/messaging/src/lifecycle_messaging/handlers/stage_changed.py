"""lifecycle.stage_changed -> the stage's message, queued for delivery (or awaiting a contact).

An anonymous visitor has no address yet: their welcome waits and is released, in order, when
they sign up or identify with an email, or when a later transition of theirs carries one.
"""

from __future__ import annotations

from lifecycle_shared.events import CloudEvent, StageChangedData, derived_event_id
from lifecycle_shared.kafka.runner import Emitted, PermanentError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.domain.templates import render, template_for


async def handle_stage_changed(conn: AsyncConnection, event: CloudEvent, *, brand: str) -> Emitted:
    try:
        transition = StageChangedData.model_validate(event.data)
    except ValidationError as error:
        raise PermanentError(f"stage_changed data invalid: {error.errors()[0]}") from None
    email = transition.traits.get("email") if isinstance(transition.traits.get("email"), str) else None
    linked_ids = list(dict.fromkeys([transition.customer_id, *transition.anonymous_ids]))
    if email:
        await repo.release_awaiting(conn, linked_ids=linked_ids, customer_id=transition.customer_id,
                                    recipient=email)
    template = template_for(from_stage=transition.from_stage, to_stage=transition.to_stage)
    if template is None:
        return []
    rendered = render(template, traits=transition.traits, brand=brand)
    await repo.add_message(
        conn, id=derived_event_id(transition.customer_id, template, event.id),
        customer_id=transition.customer_id, linked_ids=linked_ids, template=template,
        stage=transition.to_stage, cause_event_id=event.id, recipient=email,
        subject=rendered.subject, body=rendered.body,
        status="queued" if email else "awaiting_contact")
    return []
