"""All SQL of the messaging service. Functions take the caller's connection, never commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import messages


async def add_message(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(messages).values(**values).on_conflict_do_nothing())


async def release_awaiting(conn: AsyncConnection, *, linked_ids: list[str], customer_id: str,
                           recipient: str) -> int:
    """Queue messages that waited for a contact address under any of the customer's ids."""
    result = await conn.execute(
        update(messages)
        .where(messages.c.status == "awaiting_contact", messages.c.customer_id.in_(linked_ids))
        .values(status="queued", recipient=recipient, customer_id=customer_id, linked_ids=linked_ids))
    return result.rowcount


async def claim_queued(conn: AsyncConnection, *, limit: int) -> list[Any]:
    return list((await conn.execute(
        select(messages).where(messages.c.status == "queued", messages.c.next_attempt_at <= func.now())
        .order_by(messages.c.seq)
        .limit(limit).with_for_update(skip_locked=True))).all())


async def mark_sent(conn: AsyncConnection, *, message_id: str) -> None:
    await conn.execute(update(messages).where(messages.c.id == message_id)
                       .values(status="sent", sent_at=func.now(), attempts=messages.c.attempts + 1))


async def mark_failed(conn: AsyncConnection, *, message_id: str, error: str, give_up: bool,
                      retry_in_s: float) -> None:
    await conn.execute(update(messages).where(messages.c.id == message_id).values(
        status="failed" if give_up else "queued", last_error=error[:2000],
        attempts=messages.c.attempts + 1,
        next_attempt_at=func.now() + timedelta(seconds=retry_in_s)))


async def messages_for(conn: AsyncConnection, *, customer_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(
        select(messages).where(or_(messages.c.customer_id == customer_id,
                                   messages.c.linked_ids.any(customer_id)))
        .order_by(messages.c.seq))).mappings().all()
    return [dict(row) for row in rows]
