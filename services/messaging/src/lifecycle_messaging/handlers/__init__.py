"""Handlers by consumed event type, routed by the shared runner.

Campaigns (docs/messaging.md "Campaigns"): `lifecycle.stage_changed` (`handlers.stage_changed`), loyalty's
`loyalty.tier_changed`, `loyalty.points_expiring` and `loyalty.reward_redeemed` (`handlers.loyalty_events`), and
the track events the campaigns in force name as triggers or as what cancels a waiting message
(`handlers.campaign_touchpoints`; the set follows the campaign book, so a campaign naming a new event makes the
consumer read it from then on). A type with a handler of its own (`touchpoint.signed_up`) that a campaign names
goes through both, its own first.

Touchpoints about consent: `touchpoint.unsubscribed` / `touchpoint.subscribed` (track `Unsubscribed` /
`Subscribed`), and the opt-in traits of identify / signed-up (`handlers.contacts`): docs/messaging.md
"Consent and unsubscribe". `customer.erasure_requested` (`handlers.erasure_requested`): docs/erasure.md. Orders
and refunds (`touchpoint.order_completed` / `touchpoint.order_refunded`) for
campaign lift: docs/messaging.md "Campaign lift".

Not routed, so skipped undecoded: every other event type on the topics - among them
`lifecycle.history_corrected`, which rewrites the stored past and is never a reason to message anyone.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from lifecycle_shared.erasure_reports import erasure_route
from lifecycle_shared.events import (
    ERASURE_REQUESTED_TYPE,
    IDENTITY_MERGED_TYPE,
    POINTS_EXPIRING_TYPE,
    REWARD_REDEEMED_TYPE,
    STAGE_CHANGED_TYPE,
    TIER_CHANGED_TYPE,
    TOUCHPOINT_TYPE_PREFIX,
    IdentityMergedData,
    PointsExpiringData,
    RewardRedeemedData,
    StageChangedData,
    TierChangedData,
    TouchpointData,
)
from lifecycle_shared.kafka.registry import Emitted, Handler, Route, Router, Typed, route_by_type
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.consenting import Links
from lifecycle_messaging.db import erasure
from lifecycle_messaging.domain.local_time import UTC_ZONE
from lifecycle_messaging.handlers.campaign_touchpoints import handle_campaign_touchpoints
from lifecycle_messaging.handlers.contacts import IDENTIFY, SIGNED_UP, handle_contacts
from lifecycle_messaging.handlers.identity_merged import handle_identity_merged
from lifecycle_messaging.handlers.loyalty_events import handle_loyalty_events
from lifecycle_messaging.handlers.order_completed import ORDER_COMPLETED_TYPE, handle_order_completed
from lifecycle_messaging.handlers.order_refunded import ORDER_REFUNDED_TYPE, handle_order_refunded
from lifecycle_messaging.handlers.stage_changed import handle_stage_changed
from lifecycle_messaging.handlers.subscribed import SUBSCRIBED_TYPE, handle_subscribed
from lifecycle_messaging.handlers.unsubscribed import UNSUBSCRIBED_TYPE, handle_unsubscribed
from lifecycle_messaging.queueing import Rendering
from lifecycle_messaging.suppressing import Freshness


def routes(*, brand: str, freshness: Freshness, default_locale: str = "en", links: Links | None = None,
           book: CampaignBook | None = None, erasure_pepper: bytes | None = None, shop_url: str | None = None,
           shop_zone: ZoneInfo = UTC_ZONE) -> Router:
    """`links`: the unsubscribe links marketing messages carry in their body (None: the delivery worker adds
    them to the headers only). `book`: the campaigns in force (default: the shipped ones). `erasure_pepper`: the
    key of the hashes erasures name customers by (docs/erasure.md; None: erasures are dead-lettered). `shop_url`
    and `shop_zone`: the shop's web address (None: not set) and zone, for the templates."""
    rendering = Rendering(book=book or CampaignBook(), brand=brand, default_locale=default_locale, links=links,
                          shop_url=shop_url, shop_zone=shop_zone)
    contacts = Route(TouchpointData, partial(handle_contacts, clock=freshness.clock))
    loyalty = partial(handle_loyalty_events, freshness=freshness, rendering=rendering)
    fixed = route_by_type({
        STAGE_CHANGED_TYPE: Route(StageChangedData, partial(handle_stage_changed, freshness=freshness,
                                                            rendering=rendering)),
        IDENTITY_MERGED_TYPE: Route(IdentityMergedData, handle_identity_merged),
        ERASURE_REQUESTED_TYPE: erasure_route(erasure.erase, erasure_pepper),
        IDENTIFY: contacts,
        SIGNED_UP: contacts,
        UNSUBSCRIBED_TYPE: Route(TouchpointData, partial(handle_unsubscribed, clock=freshness.clock)),
        SUBSCRIBED_TYPE: Route(TouchpointData, partial(handle_subscribed, clock=freshness.clock,
                                                        erasure_pepper=erasure_pepper)),
        ORDER_COMPLETED_TYPE: Route(TouchpointData, handle_order_completed),
        ORDER_REFUNDED_TYPE: Route(TouchpointData, handle_order_refunded),
        TIER_CHANGED_TYPE: Route(TierChangedData, loyalty),
        POINTS_EXPIRING_TYPE: Route(PointsExpiringData, loyalty),
        REWARD_REDEEMED_TYPE: Route(RewardRedeemedData, loyalty),
    })
    campaign_touchpoints = Route(TouchpointData, partial(handle_campaign_touchpoints, freshness=freshness,
                                                         rendering=rendering))
    both: dict[str, Route] = {}  # built once per type: the runner runs consecutive events of one handler together

    def route(event_type: str) -> Route | None:
        found = fixed(event_type)
        if not event_type.startswith(TOUCHPOINT_TYPE_PREFIX) or event_type not in rendering.book.touchpoint_types:
            return found
        if found is None:
            return campaign_touchpoints
        if event_type not in both:
            both[event_type] = Route(found.model, _then(found.handler, campaign_touchpoints.handler))
        return both[event_type]

    return route


def _then(first: Handler, second: Handler) -> Handler:
    async def handle(conn: AsyncConnection, events: list[Typed[Any]]) -> Emitted:
        return [*await first(conn, events), *await second(conn, events)]

    return handle


def routes_and_webhooks(*, brand: str, freshness: Freshness, default_locale: str = "en",
                        links: Links | None = None, book: CampaignBook | None = None,
                        erasure_pepper: bytes | None = None, shop_url: str | None = None,
                        shop_zone: ZoneInfo = UTC_ZONE) -> Router:
    """`routes`, each event type a webhook endpoint may subscribe to also fanned out to the endpoints
    (`handlers.webhooks`), in the same transaction."""
    from lifecycle_messaging.handlers.webhooks import with_webhooks

    return with_webhooks(routes(brand=brand, freshness=freshness, default_locale=default_locale, links=links,
                                book=book, erasure_pepper=erasure_pepper, shop_url=shop_url, shop_zone=shop_zone))
