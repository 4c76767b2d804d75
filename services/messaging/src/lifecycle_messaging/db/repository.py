"""All SQL of the messaging service. Functions take the caller's connection, never commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import messages
from lifecycle_messaging.domain.people import DELIVERED


async def add_messages(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert messages (one statement); an id already there is the same message: skipped."""
    if rows:
        await conn.execute(insert(messages).on_conflict_do_nothing(index_elements=["id"]), rows)


async def templates_delivered(conn: AsyncConnection, persons: list[str]) -> dict[str, set[str]]:
    """The templates each person (by their own key) has queued or sent."""
    if not persons:
        return {}
    rows = await conn.execute(select(messages.c.customer_id, messages.c.template).distinct()
                              .where(messages.c.customer_id.in_(persons), messages.c.status.in_(DELIVERED)))
    delivered: dict[str, set[str]] = {}
    for row in rows:
        delivered.setdefault(row.customer_id, set()).add(row.template)
    return delivered


async def claim_due(conn: AsyncConnection, *, limit: int, lease_s: float) -> list[Any]:
    """Take up to `limit` due messages for sending: each attempt is counted and leased now, so a
    message whose worker dies mid-send comes back after the lease, and only a bounded number of times."""
    due = (select(messages.c.id).where(messages.c.status == "queued", messages.c.next_attempt_at <= func.now())
           .order_by(messages.c.seq).limit(limit).with_for_update(skip_locked=True)).scalar_subquery()
    claimed = (await conn.execute(
        update(messages).where(messages.c.id.in_(due))
        .values(attempts=messages.c.attempts + 1, next_attempt_at=func.now() + timedelta(seconds=lease_s))
        .returning(messages))).all()
    return sorted(claimed, key=lambda row: row.seq)  # RETURNING follows no ORDER BY: a customer's go in order


async def mark_sent(conn: AsyncConnection, *, message_id: str, at: datetime | None = None) -> None:
    """Sent - also if it was suppressed while the worker was sending it: it left, and the log says so.
    `at`: the service clock's instant of the send (what the frequency caps count)."""
    await conn.execute(update(messages).where(messages.c.id == message_id,
                                              messages.c.status.in_(("queued", "suppressed")))
                       .values(status="sent", sent_at=func.now(), sent_clock_at=at, last_error=None,
                               suppressed_reason=None))


async def mark_unsent(conn: AsyncConnection, *, message_id: str, reason: str, retry_in_s: float | None) -> None:
    """A failed attempt: retried after `retry_in_s`, or given up (`failed`) when it is None."""
    values: dict[str, Any] = {"last_error": reason[:2000]}
    if retry_in_s is None:
        values["status"] = "failed"
        values["status_changed_at"] = func.now()  # announced as `message.failed` (webhooks) from then
    else:
        values["next_attempt_at"] = func.now() + timedelta(seconds=retry_in_s)
    await conn.execute(update(messages).where(messages.c.id == message_id, messages.c.status == "queued")
                       .values(**values))


async def messages_for(conn: AsyncConnection, *, customer_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(
        select(messages).where(or_(messages.c.customer_id == customer_id,
                                   messages.c.linked_ids.contains([customer_id])))
        .order_by(messages.c.seq))).mappings().all()
    return [dict(row) for row in rows]
