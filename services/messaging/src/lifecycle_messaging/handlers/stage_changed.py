"""lifecycle.stage_changed -> the stage's message, queued for delivery (or awaiting an address).

An anonymous visitor has no address yet: their welcome waits and is released, in order, when
they sign up or identify with an email, or when a later transition of theirs carries one. An
address already known for one of the customer's ids is used at once, whichever came first - if
it is the same owner's (see `db.contacts`). A transition also says, authoritatively, which user
its anonymous ids belong to. A run of transitions is written with a handful of statements.
"""

from __future__ import annotations

from typing import Any

from lifecycle_shared.events import CloudEvent, StageChangedData, derived_event_id
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import contacts
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.domain.addresses import valid_address
from lifecycle_messaging.domain.templates import render, template_for


def message_row(event: CloudEvent, transition: StageChangedData, *, email: str | None,
                linked_ids: list[str], brand: str) -> dict[str, Any] | None:
    template = template_for(from_stage=transition.from_stage, to_stage=transition.to_stage)
    if template is None:
        return None
    rendered = render(template, traits=transition.traits, brand=brand)
    return {"id": derived_event_id(transition.customer_id, template, event.id),
            "customer_id": transition.customer_id, "linked_ids": linked_ids, "user_id": transition.user_id,
            "template": template, "stage": transition.to_stage, "cause_event_id": event.id, "recipient": email,
            "subject": rendered.subject, "body": rendered.body,
            "status": "queued" if email else "awaiting_contact"}


def linked_ids_of(transition: StageChangedData) -> list[str]:
    return list(dict.fromkeys([transition.customer_id, *transition.anonymous_ids]))


async def handle_stage_changes(conn: AsyncConnection, events: list[Typed[StageChangedData]], *,
                               brand: str) -> Emitted:
    transitions = [(typed.event, typed.data) for typed in events]
    await contacts.claim(conn, {anonymous_id: t.user_id for _, t in transitions if t.user_id
                                for anonymous_id in t.anonymous_ids}, authoritative=True)
    ids = sorted({i for _, t in transitions for i in linked_ids_of(t)})
    known = await contacts.known(conn, ids)
    owners = await contacts.owners_of(conn, ids)
    learned: dict[str, contacts.Contact] = {}
    rows: list[dict[str, Any]] = []
    for event, transition in transitions:
        linked_ids = linked_ids_of(transition)
        owner = contacts.message_owner(transition.user_id, linked_ids, owners)
        email = valid_address(transition.traits.get("email"))
        if email:  # the stage engine's own view of this customer's address: theirs
            contact = contacts.Contact(email=email, linked_ids=linked_ids, user_id=owner)
            learned.update(dict.fromkeys(linked_ids, contact))
            known.update(dict.fromkeys(linked_ids, contact))
        elif contact := next((known[i] for i in linked_ids if i in known and known[i].user_id == owner), None):
            email, linked_ids = contact.email, list(dict.fromkeys([*linked_ids, *contact.linked_ids]))
        row = message_row(event, transition, email=email, linked_ids=linked_ids, brand=brand)
        if row is not None:
            rows.append(row)
    await contacts.remember(conn, learned)
    await repo.add_messages(conn, rows)
    await contacts.release(conn, list(learned.values()))
    return []
