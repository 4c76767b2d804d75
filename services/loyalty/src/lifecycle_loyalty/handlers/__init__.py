"""Handlers by consumed event type, routed by the shared runner."""

from __future__ import annotations

from functools import partial

from lifecycle_shared.erasure_reports import erasure_route
from lifecycle_shared.events import (
    ERASURE_REQUESTED_TYPE,
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    IdentityMergedData,
    StageChangedData,
    TouchpointData,
)
from lifecycle_shared.kafka.registry import Route, Router, route_by_type
from lifecycle_shared.topics import Topics

from lifecycle_loyalty.db import erasure
from lifecycle_loyalty.handlers.identity_merged import handle_identity_merged
from lifecycle_loyalty.handlers.orders import ORDER_COMPLETED, ORDER_REFUNDED, handle_orders
from lifecycle_loyalty.handlers.referral_completed import REFERRAL_COMPLETED, handle_referral_completed
from lifecycle_loyalty.handlers.review_written import REVIEW_WRITTEN, handle_review_written
from lifecycle_loyalty.handlers.stage_changed import handle_stage_changed


def routes(*, topics: Topics | None = None, erasure_pepper: bytes | None = None) -> Router:
    """`topics`: where the handlers announce (loyalty-events.v1), the production names by default; `erasure_pepper`:
    the key of the hashes erasures name customers by (docs/erasure.md)."""
    topic = (topics or Topics()).loyalty_events
    orders = Route(TouchpointData, partial(handle_orders, topic=topic))
    return route_by_type({
        ORDER_COMPLETED: orders,
        ORDER_REFUNDED: orders,
        REFERRAL_COMPLETED: Route(TouchpointData, partial(handle_referral_completed, topic=topic)),
        REVIEW_WRITTEN: Route(TouchpointData, partial(handle_review_written, topic=topic)),
        STAGE_CHANGED_TYPE: Route(StageChangedData, partial(handle_stage_changed, topic=topic)),
        IDENTITY_MERGED_TYPE: Route(IdentityMergedData, partial(handle_identity_merged, topic=topic)),
        ERASURE_REQUESTED_TYPE: erasure_route(erasure.erase, erasure_pepper),
    })
