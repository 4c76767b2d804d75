"""Handlers by consumed event type, routed by the shared runner.

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

from lifecycle_messaging.handlers.contacts import IDENTIFY, SIGNED_UP, handle_contacts
from lifecycle_messaging.handlers.identity_merged import handle_identity_merged
from lifecycle_messaging.handlers.stage_changed import handle_stage_changed
from lifecycle_messaging.suppressing import Freshness


def routes(*, brand: str, freshness: Freshness, default_locale: str = "en") -> Router:
    contacts = Route(TouchpointData, handle_contacts)
    return route_by_type({
        STAGE_CHANGED_TYPE: Route(StageChangedData, partial(handle_stage_changed, brand=brand, freshness=freshness,
                                                                 default_locale=default_locale)),
        IDENTITY_MERGED_TYPE: Route(IdentityMergedData, handle_identity_merged),
        IDENTIFY: contacts,
        SIGNED_UP: contacts,
    })


def routes_and_webhooks(*, brand: str, freshness: Freshness, default_locale: str = "en") -> Router:
    """`routes`, each event type a webhook endpoint may subscribe to also fanned out to the endpoints
    (`handlers.webhooks`), in the same transaction."""
    from lifecycle_messaging.handlers.webhooks import with_webhooks

    return with_webhooks(routes(brand=brand, freshness=freshness, default_locale=default_locale))
