"""Handlers by consumed event type, routed by the shared runner.

Touchpoints about consent: `touchpoint.unsubscribed` / `touchpoint.subscribed` (track `Unsubscribed` /
`Subscribed`), and the opt-in traits of identify / signed-up (`handlers.contacts`): docs/messaging.md
"Consent and unsubscribe". Orders and refunds (`touchpoint.order_completed` / `touchpoint.order_refunded`) for
campaign lift: docs/messaging.md "Campaign lift".

Not routed, so skipped undecoded: every other event type on the topics - among them
`lifecycle.history_corrected`, which rewrites the stored past and is never a reason to message anyone.
"""

from __future__ import annotations

from functools import partial

from lifecycle_shared.events import (
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    IdentityMergedData,
    StageChangedData,
    TouchpointData,
)
from lifecycle_shared.kafka.registry import Route, Router, route_by_type

from lifecycle_messaging.consenting import Links
from lifecycle_messaging.handlers.contacts import IDENTIFY, SIGNED_UP, handle_contacts
from lifecycle_messaging.handlers.identity_merged import handle_identity_merged
from lifecycle_messaging.handlers.order_completed import ORDER_COMPLETED_TYPE, handle_order_completed
from lifecycle_messaging.handlers.order_refunded import ORDER_REFUNDED_TYPE, handle_order_refunded
from lifecycle_messaging.handlers.stage_changed import handle_stage_changed
from lifecycle_messaging.handlers.subscribed import SUBSCRIBED_TYPE, handle_subscribed
from lifecycle_messaging.handlers.unsubscribed import UNSUBSCRIBED_TYPE, handle_unsubscribed
from lifecycle_messaging.suppressing import Freshness


def routes(*, brand: str, freshness: Freshness, default_locale: str = "en", links: Links | None = None) -> Router:
    """`links`: the unsubscribe links marketing messages carry in their body (None: the delivery worker adds
    them to the headers only)."""
    contacts = Route(TouchpointData, partial(handle_contacts, clock=freshness.clock))
    return route_by_type({
        STAGE_CHANGED_TYPE: Route(StageChangedData, partial(handle_stage_changed, brand=brand, freshness=freshness,
                                                                 default_locale=default_locale, links=links)),
        IDENTITY_MERGED_TYPE: Route(IdentityMergedData, handle_identity_merged),
        IDENTIFY: contacts,
        SIGNED_UP: contacts,
        UNSUBSCRIBED_TYPE: Route(TouchpointData, partial(handle_unsubscribed, clock=freshness.clock)),
        SUBSCRIBED_TYPE: Route(TouchpointData, partial(handle_subscribed, clock=freshness.clock)),
        ORDER_COMPLETED_TYPE: Route(TouchpointData, handle_order_completed),
        ORDER_REFUNDED_TYPE: Route(TouchpointData, handle_order_refunded),
    })


def routes_and_webhooks(*, brand: str, freshness: Freshness, default_locale: str = "en",
                        links: Links | None = None) -> Router:
    """`routes`, each event type a webhook endpoint may subscribe to also fanned out to the endpoints
    (`handlers.webhooks`), in the same transaction."""
    from lifecycle_messaging.handlers.webhooks import with_webhooks

    return with_webhooks(routes(brand=brand, freshness=freshness, default_locale=default_locale, links=links))
