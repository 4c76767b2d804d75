"""lifecycle.stage_changed -> the stage's message, queued for delivery (or awaiting an address).

An anonymous visitor has no address yet: their welcome waits and is released, in order, when
they sign up or identify with an email, or when a later transition of theirs carries one. An
address already known for one of the customer's ids is used at once, whichever came first - if
it is the same owner's (see `db.contacts`). A transition also says, authoritatively, which user
its anonymous ids belong to. A run of transitions is written with a handful of statements.

A transition of a key already merged into another goes to the survivor, as the merge would have
moved it (`handlers.identity_merged`); one from another key of a person that repeats what they
have queued or sent is recorded as superseded (`domain.people`). A historical transition (caused
by imported past events) messages nobody: it still says whose its ids are, and is only counted.

Messages follow where the customer stands (`domain.suppression`): every transition, historical or
not, is remembered as the customer's latest if it is; a message about a transition that is not the
latest (in this batch or seen before), or older than the freshness window, is recorded `suppressed`
with its reason instead of queued, and a message still queued or waiting for an address whose
transition a newer one overtakes is suppressed now. The delivery worker judges again before sending.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lifecycle_shared.events import CloudEvent, StageChangedData, derived_event_id
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.catalogue import shipped
from lifecycle_messaging.consenting import Links
from lifecycle_messaging.db import contacts, latest, merges
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.domain.addresses import valid_address
from lifecycle_messaging.domain.people import Alias, follows, person_of, repeats
from lifecycle_messaging.domain.suppression import SUPPRESSED, Position, latest_after, suppression
from lifecycle_messaging.domain.templates import render, template_for
from lifecycle_messaging.metrics import TRANSITIONS_UNMESSAGED, suppressed
from lifecycle_messaging.suppressing import Freshness, suppress_overtaken


@dataclass(frozen=True)
class Addressee:
    """Whom a transition's message is for: under which key, which user, linked to which ids, and its
    owner (the known user it belongs to, see `db.contacts`)."""

    customer_id: str
    user_id: str | None
    linked_ids: list[str]
    owner: str | None


def message_row(event: CloudEvent, transition: StageChangedData, to: Addressee, *, email: str | None,
                brand: str, default_locale: str = "en", links: Links | None = None) -> dict[str, Any] | None:
    template = template_for(from_stage=transition.from_stage, to_stage=transition.to_stage, reason=transition.reason)
    if template is None:
        return None
    # The id follows the stage engine's key, not where the message ends up: the same whatever came first.
    message_id = derived_event_id(transition.customer_id, template, event.id)
    # A marketing message's signed unsubscribe link, in its body and (delivery) its List-Unsubscribe header.
    unsubscribe_url = links.for_template(template, message_id) if links else None
    rendered = render(template, traits=transition.traits, brand=brand, catalogue=shipped(),
                      stage=transition.to_stage, default_locale=default_locale, unsubscribe_url=unsubscribe_url)
    return {"id": message_id, "unsubscribe_url": unsubscribe_url,
            "customer_id": to.customer_id, "linked_ids": to.linked_ids, "user_id": to.user_id,
            "template": template, "stage": transition.to_stage, "cause_event_id": event.id, "recipient": email,
            "subject": rendered.subject, **rendered.columns(),
            "status": "queued" if email else "awaiting_contact",
            "event_time": transition.event_time, "processed_at": transition.processed_at,
            "timezone": zone_trait(transition.traits.get("timezone"))}


def zone_trait(trait: object) -> str | None:
    """The `timezone` trait as kept on the message (the gateway resolves it, `domain.local_time`)."""
    return (trait.strip()[:64] or None) if isinstance(trait, str) else None


def position_of(event: CloudEvent, transition: StageChangedData) -> Position:
    return Position(transition.event_time, transition.processed_at, event.id)


def linked_ids_of(transition: StageChangedData) -> list[str]:
    return list(dict.fromkeys([transition.customer_id, *transition.anonymous_ids]))


def addressee(transition: StageChangedData, *, owners: dict[str, str], aliases: dict[str, Alias]) -> Addressee:
    """The transition's customer - or, for an anonymous key merged into another, the survivor."""
    linked_ids = linked_ids_of(transition)
    alias = aliases.get(transition.customer_id)
    if alias is not None and transition.user_id is None and follows(
            alias, owner=contacts.message_owner(None, linked_ids, owners)):
        customer_id, user_id, linked_ids = alias.survivor_id, alias.user_id, [alias.survivor_id, *linked_ids]
    else:
        customer_id, user_id = transition.customer_id, transition.user_id
    linked_ids = list(dict.fromkeys(linked_ids))
    return Addressee(customer_id, user_id, linked_ids, contacts.message_owner(user_id, linked_ids, owners))


def address_of(to: Addressee, transition: StageChangedData, *, known: dict[str, contacts.Contact],
               learned: dict[str, contacts.Contact]) -> tuple[str | None, list[str]]:
    """The address to send to, if known, and the ids the message is linked to with it. An address the
    transition carries is the stage engine's own view of this customer's: theirs, and remembered."""
    if email := valid_address(transition.traits.get("email")):
        contact = contacts.Contact(email=email, linked_ids=to.linked_ids, user_id=to.owner)
        learned.update(dict.fromkeys(to.linked_ids, contact))
        known.update(dict.fromkeys(to.linked_ids, contact))
        return email, to.linked_ids
    remembered = next((known[i] for i in to.linked_ids if i in known and known[i].user_id == to.owner), None)
    if remembered is None:
        return None, to.linked_ids
    return remembered.email, list(dict.fromkeys([*to.linked_ids, *remembered.linked_ids]))


async def handle_stage_changed(conn: AsyncConnection, events: list[Typed[StageChangedData]], *,
                               brand: str, freshness: Freshness, default_locale: str = "en",
                               links: Links | None = None) -> Emitted:
    transitions = [(typed.event, typed.data) for typed in events]
    await contacts.claim(conn, {anonymous_id: t.user_id for _, t in transitions if t.user_id
                                for anonymous_id in t.anonymous_ids}, authoritative=True)
    aliases = await merges.aliases_of(conn, sorted({t.customer_id for _, t in transitions}))
    ids = sorted({i for _, t in transitions for i in linked_ids_of(t)} | {a.survivor_id for a in aliases.values()})
    known, owners = await contacts.known(conn, ids), await contacts.owners_of(conn, ids)
    addressed = [(event, t, addressee(t, owners=owners, aliases=aliases)) for event, t in transitions]
    # Every transition is part of where its customer stands, historical or not.
    customers = sorted({to.customer_id for _, _, to in addressed})
    stored = await latest.latest_of(conn, customers)
    seen = latest_after(stored, [(to.customer_id, position_of(event, t)) for event, t, to in addressed])
    await latest.record(conn, {customer: p for customer, p in seen.items() if stored.get(customer) != p})
    live = [(event, t, to) for event, t, to in addressed if not t.historical]
    if historical := len(transitions) - len(live):  # about the past: never a moment to message anyone
        TRANSITIONS_UNMESSAGED.labels("historical").inc(historical)
    if live:
        await queue_messages(conn, live, known=known, seen=seen, freshness=freshness, brand=brand,
                             default_locale=default_locale, links=links)
    # Messages not sent yet that this batch's transitions overtook: suppressed now, not at the send.
    await suppress_overtaken(conn, await latest.pending_of(conn, customers), freshness)
    return []


async def queue_messages(conn: AsyncConnection, addressed: list[tuple[CloudEvent, StageChangedData, Addressee]], *,
                         known: dict[str, contacts.Contact], seen: dict[str, Position], freshness: Freshness,
                         brand: str, default_locale: str = "en", links: Links | None = None) -> None:
    delivered = await repo.templates_delivered(
        conn, sorted({person_of(to.customer_id, owner=to.owner) for _, _, to in addressed}))
    learned: dict[str, contacts.Contact] = {}
    rows: list[dict[str, Any]] = []
    now = freshness.clock()
    for event, transition, to in addressed:
        email, linked_ids = address_of(to, transition, known=known, learned=learned)
        row = message_row(event, transition, replace(to, linked_ids=linked_ids), email=email, brand=brand,
                          default_locale=default_locale, links=links)
        if row is None:
            continue
        person = person_of(to.customer_id, owner=to.owner)
        if repeats(row["template"], origin_id=transition.customer_id, person=person, delivered=delivered):
            row.update(status="superseded", recipient=None)
        elif reason := suppression(position_of(event, transition), latest=seen.get(to.customer_id), now=now,
                                   freshness=freshness.window):
            row.update(status=SUPPRESSED, suppressed_reason=reason)
            suppressed(row["id"], row["template"], reason)
        elif row["status"] == "queued":
            delivered.setdefault(person, set()).add(row["template"])
        row["due_at"] = now  # when it came due: the gateway's waits are measured from here
        rows.append(row)
    await contacts.remember(conn, learned)
    await repo.add_messages(conn, [{"suppressed_reason": None, **row} for row in rows])
    await contacts.release(conn, list(learned.values()))
