"""touchpoint.order_completed (track "Order Completed") -> the order, for campaign lift (`db/lift.py`).

Kept: the order id (`order_id`, else the event's id), the customer key (the event's subject, resolved through
the merges already known; later merges are followed when lift is read), the event's time and the order's value
(`revenue`, `total` or `value`). Nothing personal. A redelivery or a second event for the same order changes
nothing: the first stands. Historical (imported) orders are kept too: they are orders all the same.
"""

from __future__ import annotations

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from lifecycle_shared.orders import order_amount, order_id_of
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import merges, orders

ORDER_COMPLETED_TYPE = "touchpoint.order_completed"


async def handle_order_completed(conn: AsyncConnection, events: list[Typed[TouchpointData]]) -> Emitted:
    subjects = sorted({typed.event.subject for typed in events if typed.event.subject})
    aliases = await merges.aliases_of(conn, subjects)
    rows: list[orders.OrderRow] = []
    for typed in events:
        subject = typed.event.subject
        if not subject:
            continue
        customer = aliases[subject].survivor_id if subject in aliases else subject
        rows.append((order_id_of(typed.data.properties, fallback=typed.event.id), customer, typed.event.time,
                     order_amount(typed.data.properties), typed.event.id))
    await orders.record_orders(conn, rows)
    return []
