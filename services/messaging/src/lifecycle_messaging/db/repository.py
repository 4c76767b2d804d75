"""All SQL of the messaging service. Functions take the caller's connection, never commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import any_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import messages


async def add_messages(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert messages (one statement); an id already there is the same message: skipped."""
    if rows:
        await conn.execute(insert(messages).on_conflict_do_nothing(index_elements=["id"]), rows)


_release = (
    update(messages)
    .where(messages.c.status == "awaiting_contact", messages.c.customer_id == any_(bindparam("b_linked_ids")))
    .values(status="queued", recipient=bindparam("b_recipient"), customer_id=bindparam("b_customer_id"),
            linked_ids=bindparam("b_linked_ids"))
)


async def release_awaiting(conn: AsyncConnection, contacts: list[tuple[list[str], str, str]]) -> None:
    """Queue messages that waited for an address, for (linked ids, customer id, address) triples."""
    if contacts:
        await conn.execute(_release, [{"b_linked_ids": ids, "b_customer_id": customer, "b_recipient": address}
                                      for ids, customer, address in contacts])


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
