"""lifecycle.stage_changed -> the messages of the campaigns the transition starts, queued for delivery (or
awaiting an address).

Which campaigns: the enabled ones whose `stage_changed` trigger matches the move and whose audience the
customer is in, as the transition tells them (`domain.campaigns.for_transition`); each queues one message
(`queueing.py`), now or - for a delayed campaign - due that long after the transition.

An anonymous visitor has no address yet: their welcome waits and is released, in order, when
they sign up or identify with an email, or when a later transition of theirs carries one. An
address already known for one of the customer's ids is used at once, whichever came first - if
it is the same owner's (see `db.contacts`). A transition also says, authoritatively, which user
its anonymous ids belong to. A run of transitions is written with a handful of statements.

A transition of a key already merged into another goes to the survivor, as the merge would have
moved it (`handlers.identity_merged`); one from another key of a person that repeats what they
have queued or sent is recorded as superseded (`domain.people`). A historical transition (caused
by imported past events) messages nobody - whatever the campaigns say: it still says whose its ids
are and where the customer stands, and is only counted.

Messages follow where the customer stands (`domain.suppression`): every transition, historical or
not, is remembered as the customer's latest if it is (with the profile it tells: stage, traits, orders,
revenue - what audience conditions read later); a message about a transition that is not the latest (in
this batch or seen before), or older than the freshness window, is recorded `suppressed` with its reason
instead of queued, and a message still queued or waiting for an address whose transition a newer one
overtakes is suppressed now. The delivery worker judges again before sending.
"""

from __future__ import annotations

from lifecycle_shared.events import CloudEvent, StageChangedData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.db import contacts, latest, merges
from lifecycle_messaging.domain.addresses import valid_address
from lifecycle_messaging.domain.audience import Profile
from lifecycle_messaging.domain.campaigns import for_transition
from lifecycle_messaging.domain.suppression import STAGE_TRIGGER, Position, latest_after
from lifecycle_messaging.metrics import TRANSITIONS_UNMESSAGED
from lifecycle_messaging.queueing import Addressee, Cause, Planned, Rendering, addressee, queue
from lifecycle_messaging.suppressing import Freshness, suppress_overtaken


def position_of(event: CloudEvent, transition: StageChangedData) -> Position:
    return Position(transition.event_time, transition.processed_at, event.id)


def linked_ids_of(transition: StageChangedData) -> list[str]:
    return list(dict.fromkeys([transition.customer_id, *transition.anonymous_ids]))


def profile_told(transition: StageChangedData) -> Profile:
    """The customer as the transition tells them: what its campaigns' audiences are judged on."""
    return Profile(stage=transition.to_stage, traits=transition.traits, orders=transition.orders,
                   revenue=transition.revenue)


def cause_of(event: CloudEvent, transition: StageChangedData) -> Cause:
    return Cause(event_id=event.id, origin_id=transition.customer_id, trigger=STAGE_TRIGGER,
                 event_time=transition.event_time, processed_at=transition.processed_at,
                 stage=transition.to_stage, traits=transition.traits,
                 email=valid_address(transition.traits.get("email")))


def planned(event: CloudEvent, transition: StageChangedData, to: Addressee, book: CampaignBook) -> Planned:
    campaigns = for_transition(book.current(), from_stage=transition.from_stage, to_stage=transition.to_stage,
                               reason=transition.reason, profile=profile_told(transition))
    return Planned(cause_of(event, transition), to, campaigns)


async def handle_stage_changed(conn: AsyncConnection, events: list[Typed[StageChangedData]], *,
                               freshness: Freshness, rendering: Rendering) -> Emitted:
    transitions = [(typed.event, typed.data) for typed in events]
    await contacts.claim(conn, {anonymous_id: t.user_id for _, t in transitions if t.user_id
                                for anonymous_id in t.anonymous_ids}, authoritative=True)
    aliases = await merges.aliases_of(conn, sorted({t.customer_id for _, t in transitions}))
    ids = sorted({i for _, t in transitions for i in linked_ids_of(t)} | {a.survivor_id for a in aliases.values()})
    known, owners = await contacts.known_and_owners(conn, ids)
    addressed = [(event, t, addressee(t.customer_id, t.user_id, linked_ids_of(t), owners=owners, aliases=aliases))
                 for event, t in transitions]
    # Every transition is part of where its customer stands, historical or not.
    customers = sorted({to.customer_id for _, _, to in addressed})
    stored = await latest.latest_of(conn, customers)
    seen = latest_after(stored, [(to.customer_id, position_of(event, t)) for event, t, to in addressed])
    told = {event.id: {"to_stage": t.to_stage, "traits": t.traits, "orders": t.orders, "revenue": t.revenue}
            for event, t in transitions}
    await latest.record(conn, {customer: p for customer, p in seen.items() if stored.get(customer) != p}, told)
    live = [(event, t, to) for event, t, to in addressed if not t.historical]
    if historical := len(transitions) - len(live):  # about the past: never a moment to message anyone
        TRANSITIONS_UNMESSAGED.labels("historical").inc(historical)
    if live:  # (a live transition that starts no campaign still tells its address)
        await queue(conn, [planned(event, t, to, rendering.book) for event, t, to in live], known=known, seen=seen,
                    freshness=freshness, rendering=rendering)
    # Messages not sent yet that this batch's transitions overtook: suppressed now, not at the send.
    pending, latest_seen = await latest.pending_of(conn, customers)
    await suppress_overtaken(conn, pending, freshness, seen=latest_seen)
    return []
