"""touchpoint.<track event> that a campaign names -> its messages queued, and what cancels waiting ones remembered.

The consumer reads only the touchpoint types the campaigns in force name (`CampaignBook.touchpoint_types`):
- a `touchpoint` trigger's events (`Cart Abandoned`, `Product Added`) start its campaign for the customer, if
  they are in its audience - judged on their profile as the latest transition told it, with the event's
  traits on top (`domain.audience`). Each waits its delay (the cart reminder: four hours), once per customer
  at a time (`queueing.py`). The event's product (`properties.name`, `product`, `product_name`) fills the
  template's `last_product`. A historical touchpoint (an import) starts nothing;
- a `cancelled_by` event (`Order Completed`) is remembered per customer (`db.last_events`, the latest time):
  when a waiting message comes due, the delivery worker cancels it if its customer did one after its cause
  (`campaigning.py`). Historical ones count too: they are facts.

The customer is the event's key (userId, else anonymousId) - or, when it was merged into another, the
survivor. A touchpoint never gives an address here (a browser's event can name anyone): the message goes to the
address messaging knows for the customer, or waits for one.
"""

from __future__ import annotations

from typing import Any

from lifecycle_shared.events import CloudEvent, TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import contacts, last_events, latest, merges
from lifecycle_messaging.domain.audience import Profile
from lifecycle_messaging.domain.campaigns import for_touchpoint, starting_types
from lifecycle_messaging.queueing import Addressee, Cause, Planned, Rendering, addressee, queue
from lifecycle_messaging.suppressing import Freshness

TOUCHPOINT_TRIGGER = "touchpoint"
_PRODUCT = ("name", "product", "product_name")


def ids_of(touchpoint: TouchpointData) -> list[str]:
    return [i for i in dict.fromkeys((touchpoint.userId, touchpoint.anonymousId)) if i]


def product_of(touchpoint: TouchpointData) -> dict[str, object]:
    """The template's `last_product`, from the event's product name (when it names one)."""
    name = next((v for key in _PRODUCT if isinstance(v := touchpoint.properties.get(key), str) and v.strip()), None)
    return {"last_product": name} if name else {}


def cause_of(event: CloudEvent, touchpoint: TouchpointData, profile: Profile) -> Cause:
    traits = {**profile.traits, **{k: v for k, v in touchpoint.all_traits().items() if k != "email"}}
    return Cause(event_id=event.id, origin_id=event.subject, trigger=TOUCHPOINT_TRIGGER,
                 event_time=touchpoint.timestamp, processed_at=touchpoint.timestamp, stage=profile.stage or "",
                 traits=traits, values=product_of(touchpoint))


def plan(event: CloudEvent, touchpoint: TouchpointData, to: Addressee, profile: Profile, *,
         campaigns: list[Any]) -> Planned:
    cause = cause_of(event, touchpoint, profile)
    seen_as = Profile(stage=profile.stage, traits=cause.traits, orders=profile.orders, revenue=profile.revenue)
    return Planned(cause, to, for_touchpoint(campaigns, event_type=event.type, profile=seen_as))


async def handle_campaign_touchpoints(conn: AsyncConnection, events: list[Typed[TouchpointData]], *,
                                      freshness: Freshness, rendering: Rendering) -> Emitted:
    book = rendering.book
    keyed = [(typed.event, typed.data) for typed in events if ids_of(typed.data)]
    aliases = await merges.aliases_of(conn, sorted({event.subject for event, _ in keyed}))
    ids = sorted({i for _, t in keyed for i in ids_of(t)} | {a.survivor_id for a in aliases.values()})
    known, owners = await contacts.known_and_owners(conn, ids)  # the addresses: for the plans, if any
    addressed = [(event, t, addressee(event.subject, t.userId, ids_of(t), owners=owners, aliases=aliases))
                 for event, t in keyed]
    cancelling = {c for campaign in book.current() for c in campaign.cancelling_types}
    seen: dict[tuple[str, str], Any] = {}
    for event, t, to in addressed:
        if event.type in cancelling:
            key = (to.customer_id, event.type)
            seen[key] = max(seen.get(key, t.timestamp), t.timestamp)
    await last_events.record(conn, seen)
    # Only a live event of a type that starts a campaign can queue anything: the rest (the cancelling ones, an
    # order) read neither profiles nor addresses.
    campaigns = book.current()
    starting = starting_types(campaigns)
    live = [(event, t, to) for event, t, to in addressed if not t.historical and event.type in starting]
    profiles = await latest.profiles_of(conn, sorted({to.customer_id for _, _, to in live}))
    plans = [plan(event, t, to, profiles.get(to.customer_id, Profile()), campaigns=campaigns) for event, t, to in live]
    if plans := [p for p in plans if p.campaigns]:
        await queue(conn, plans, known=known, seen={}, freshness=freshness,
                    rendering=rendering)
    return []
