"""Orders and refunds kept for campaign lift (`db/lift.py`). Functions take the caller's connection and never
commit. Both inserts are idempotent: the first `Order Completed` of an order stands, a refund counts once per
event."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import order_refunds, orders

# (order id, customer key, time, revenue, event id)
OrderRow = tuple[str, str, datetime, Decimal, str]
# (event id, order id, amount or None for the whole order, time)
RefundRow = tuple[str, str, Decimal | None, datetime]


async def record_orders(conn: AsyncConnection, rows: list[OrderRow]) -> None:
    if rows:
        await conn.execute(insert(orders).on_conflict_do_nothing(), [
            {"order_id": order, "customer_id": customer, "ordered_at": at, "revenue": revenue, "event_id": event}
            for order, customer, at, revenue, event in sorted(rows)])


async def record_refunds(conn: AsyncConnection, rows: list[RefundRow]) -> None:
    if rows:
        await conn.execute(insert(order_refunds).on_conflict_do_nothing(), [
            {"event_id": event, "order_id": order, "amount": amount, "refunded_at": at}
            for event, order, amount, at in sorted(rows, key=lambda row: row[0])])
