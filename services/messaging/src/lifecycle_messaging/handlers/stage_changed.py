"""lifecycle.stage_changed -> the stage's message, queued for delivery (or awaiting a contact).

An anonymous visitor has no address yet: their welcome waits and is released, in order, when
they sign up or identify with an email, or when a later transition of theirs carries one.
A run of transitions is written with two statements: the new messages, then the releases.
"""

from __future__ import annotations

from typing import Any

from lifecycle_shared.events import CloudEvent, StageChangedData, derived_event_id
from lifecycle_shared.kafka.runner import Emitted, PermanentError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.domain.templates import render, template_for


def parse(event: CloudEvent) -> StageChangedData:
    try:
        return StageChangedData.model_validate(event.data)
    except ValidationError as error:
        raise PermanentError(f"stage_changed data invalid: {error.errors()[0]}") from None


def message_row(event: CloudEvent, transition: StageChangedData, *, email: str | None,
                linked_ids: list[str], brand: str) -> dict[str, Any] | None:
    template = template_for(from_stage=transition.from_stage, to_stage=transition.to_stage)
    if template is None:
        return None
    rendered = render(template, traits=transition.traits, brand=brand)
    return {"id": derived_event_id(transition.customer_id, template, event.id),
            "customer_id": transition.customer_id, "linked_ids": linked_ids, "template": template,
            "stage": transition.to_stage, "cause_event_id": event.id, "recipient": email,
            "subject": rendered.subject, "body": rendered.body,
            "status": "queued" if email else "awaiting_contact"}


async def handle_stage_changes(conn: AsyncConnection, events: list[CloudEvent], *, brand: str) -> Emitted:
    rows: list[dict[str, Any]] = []
    contacts: dict[str, tuple[list[str], str, str]] = {}
    for event in events:
        transition = parse(event)
        email = transition.traits.get("email") if isinstance(transition.traits.get("email"), str) else None
        linked_ids = list(dict.fromkeys([transition.customer_id, *transition.anonymous_ids]))
        if email:
            contacts[transition.customer_id] = (linked_ids, transition.customer_id, email)
        row = message_row(event, transition, email=email, linked_ids=linked_ids, brand=brand)
        if row is not None:
            rows.append(row)
    await repo.add_messages(conn, rows)
    await repo.release_awaiting(conn, list(contacts.values()))
    return []
