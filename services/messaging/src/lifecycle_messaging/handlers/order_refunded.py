"""touchpoint.order_refunded (track "Order Refunded") -> a refund netted against its order in campaign lift.

The refund names its order (`order_id`, else it is its own, matching nothing) and an amount (`revenue`,
`total` or `value`; none or 0: the whole order). Kept once per event id, so a redelivery changes nothing;
refunds of one order add up, never below zero (`db/lift.py`). A refund may arrive before its order.
"""

from __future__ import annotations

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from lifecycle_shared.orders import order_amount, order_id_of
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import orders

ORDER_REFUNDED_TYPE = "touchpoint.order_refunded"


async def handle_order_refunded(conn: AsyncConnection, events: list[Typed[TouchpointData]]) -> Emitted:
    rows: list[orders.RefundRow] = []
    for typed in events:
        amount = order_amount(typed.data.properties)
        rows.append((typed.event.id, order_id_of(typed.data.properties, fallback=typed.event.id),
                     amount if amount > 0 else None, typed.event.time))
    await orders.record_refunds(conn, rows)
    return []
