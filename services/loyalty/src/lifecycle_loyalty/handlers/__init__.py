"""Handlers by consumed event type, routed by the shared runner."""

from __future__ import annotations

from lifecycle_shared.events import STAGE_CHANGED_TYPE
from lifecycle_shared.kafka.runner import route_by_type

from lifecycle_loyalty.handlers.orders import ORDER_COMPLETED, ORDER_REFUNDED, handle_orders
from lifecycle_loyalty.handlers.stages import handle_stage_changed

route = route_by_type({
    ORDER_COMPLETED: handle_orders,
    ORDER_REFUNDED: handle_orders,
    STAGE_CHANGED_TYPE: handle_stage_changed,
})
