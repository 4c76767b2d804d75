"""touchpoint.order_completed earns points; touchpoint.order_refunded reverses what it earned."""

from __future__ import annotations

from lifecycle_shared.events import CloudEvent, TouchpointData
from lifecycle_shared.kafka.runner import Emitted, PermanentError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import ledger
from lifecycle_loyalty.domain.earning import DEFAULT_EARN_RULES, order_id_of, points_for_order


def _touchpoint(event: CloudEvent) -> TouchpointData:
    try:
        return TouchpointData.model_validate(event.data)
    except ValidationError as error:
        raise PermanentError(f"touchpoint data invalid: {error.errors()[0]}") from None


async def handle_order_completed(conn: AsyncConnection, event: CloudEvent) -> Emitted:
    touchpoint = _touchpoint(event)
    points = points_for_order(touchpoint.properties, DEFAULT_EARN_RULES)
    order_id = order_id_of(touchpoint.properties, fallback=event.id)
    if points > 0 and await ledger.points_for_order(conn, customer_id=event.subject, order_id=order_id) == 0:
        await ledger.append(conn, customer_id=event.subject, kind="earn", points=points,
                            rule=f"points_per_currency_unit/{DEFAULT_EARN_RULES.version}",
                            cause_event_id=event.id, order_id=order_id)
    return []


async def handle_order_refunded(conn: AsyncConnection, event: CloudEvent) -> Emitted:
    touchpoint = _touchpoint(event)
    order_id = order_id_of(touchpoint.properties, fallback=event.id)
    held = await ledger.points_for_order(conn, customer_id=event.subject, order_id=order_id)
    if held > 0:
        await ledger.append(conn, customer_id=event.subject, kind="reverse", points=-held,
                            rule=f"refund_reversal/{DEFAULT_EARN_RULES.version}",
                            cause_event_id=event.id, order_id=order_id)
    return []
