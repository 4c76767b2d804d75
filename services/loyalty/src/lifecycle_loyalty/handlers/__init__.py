"""Handlers by consumed event type, routed by the shared runner."""

from __future__ import annotations

from lifecycle_shared.events import STAGE_CHANGED_TYPE
from lifecycle_shared.kafka.runner import each, route_by_type

from lifecycle_loyalty.handlers.orders import handle_order_completed, handle_order_refunded
from lifecycle_loyalty.handlers.stages import handle_stage_changed

route = route_by_type({
    "touchpoint.order_completed": each(handle_order_completed),
    "touchpoint.order_refunded": each(handle_order_refunded),
    STAGE_CHANGED_TYPE: each(handle_stage_changed),
})
