"""loyalty.tier_changed, loyalty.points_expiring, loyalty.reward_redeemed (loyalty-events.v1) -> the messages of
the campaigns they start.

A `loyalty` trigger names what happened (`tier_reached`, `tier_lost`, `points_expiring`, `reward_redeemed`:
`domain.triggers.loyalty_fact`) and optionally which tiers, how many points, which reward kinds. The customer is
the event's `customer_id` (loyalty's key: the stage engine's, resolved through merges) - or the survivor, when
messaging knows it was merged; their audience is judged on their profile as the latest transition told it, with
the event's tier and points on top, which also fill the template's `tier` and `points`.

Loyalty's events carry no `historical` flag: an event about imported orders is judged by its age, like every
message (`domain.suppression`: older than the freshness window, suppressed `stale`). Each campaign waits once per
customer at a time (`queueing.py`). The events are also fanned out to webhook endpoints (`handlers.webhooks`).
"""

from __future__ import annotations

from typing import Any

from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import contacts, latest, merges
from lifecycle_messaging.domain.audience import Profile
from lifecycle_messaging.domain.campaigns import for_loyalty
from lifecycle_messaging.domain.triggers import LoyaltyFact, loyalty_fact
from lifecycle_messaging.queueing import Cause, Planned, Rendering, addressee, queue
from lifecycle_messaging.suppressing import Freshness

LOYALTY_TRIGGER = "loyalty"


def cause_of(event_id: str, fact: LoyaltyFact, profile: Profile) -> Cause:
    return Cause(event_id=event_id, origin_id=fact.customer_id, trigger=LOYALTY_TRIGGER, event_time=fact.at,
                 processed_at=fact.at, stage=profile.stage or "", traits=profile.traits, values=fact.values)


async def handle_loyalty_events(conn: AsyncConnection, events: list[Typed[Any]], *, freshness: Freshness,
                                rendering: Rendering) -> Emitted:
    facts = [(typed.event.id, fact) for typed in events if (fact := loyalty_fact(typed.event.type, typed.data))]
    campaigns = [c for c in rendering.book.current() if c.trigger_kind == LOYALTY_TRIGGER]
    if not facts or not campaigns:
        return []
    keys = sorted({fact.customer_id for _, fact in facts})
    aliases = await merges.aliases_of(conn, keys)
    ids = sorted(set(keys) | {a.survivor_id for a in aliases.values()})
    known, owners = await contacts.known_and_owners(conn, ids)
    # Loyalty's key is a known user's id when the address known for it came with that user.
    users = {key: key for key in keys if key in known and known[key].user_id == key}
    addressed = [(event_id, fact, addressee(fact.customer_id, users.get(fact.customer_id), [],
                                            owners=owners, aliases=aliases)) for event_id, fact in facts]
    profiles = await latest.profiles_of(conn, sorted({to.customer_id for _, _, to in addressed}))
    plans = []
    for event_id, fact, to in addressed:
        stored = profiles.get(to.customer_id, Profile())
        profile = Profile(stage=stored.stage, traits=stored.traits, orders=stored.orders, revenue=stored.revenue,
                          values=fact.values)
        plans.append(Planned(cause_of(event_id, fact, stored), to, for_loyalty(campaigns, fact, profile=profile)))
    if plans := [p for p in plans if p.campaigns]:
        await queue(conn, plans, known=known, seen={}, freshness=freshness, rendering=rendering)
    return []
