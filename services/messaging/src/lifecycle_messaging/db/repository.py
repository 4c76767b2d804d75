"""All SQL of the messaging service. Functions take the caller's connection, never commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, literal_column, or_, select, union_all, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import messages
from lifecycle_messaging.domain.people import DELIVERED

PENDING = ("queued", "awaiting_contact")


async def add_messages(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert messages (one statement); an id already there is the same message: skipped. A row naming no
    campaign is its template's (the operator's notices)."""
    if rows:
        await conn.execute(insert(messages).on_conflict_do_nothing(index_elements=["id"]),
                           [{"campaign": row["template"], **row} for row in rows])


def _campaigns(kind: str, customers: list[str], statuses: tuple[str, ...], *,
               due_since: datetime | None = None) -> Select[Any]:
    query = (select(literal_column(f"'{kind}'").label("kind"), messages.c.customer_id, messages.c.campaign).distinct()
             .where(messages.c.customer_id.in_(customers), messages.c.status.in_(statuses)))
    if due_since is not None:  # only those still news: due (or caused, without a delay) since then
        query = query.where(func.coalesce(messages.c.not_before, messages.c.event_time) > due_since)
    return query


async def campaigns_delivered_and_waiting(conn: AsyncConnection, persons: list[str], customers: list[str], *,
                                          due_since: datetime) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The campaigns each person (by their own key) has a message of queued or sent; and those each customer has
    a message of not sent yet (queued, or waiting for an address) that is still news: due since `due_since` (one
    older, say a reminder that waited days for an address, is stale anyway). One statement."""
    parts = ([_campaigns("delivered", persons, DELIVERED)] if persons else []) + (
        [_campaigns("waiting", customers, PENDING, due_since=due_since)] if customers else [])
    found: dict[str, dict[str, set[str]]] = {"delivered": {}, "waiting": {}}
    if parts:
        for row in await conn.execute(union_all(*parts) if len(parts) > 1 else parts[0]):
            found[row.kind].setdefault(row.customer_id, set()).add(row.campaign)
    return found["delivered"], found["waiting"]


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
    values: dict[str, Any] = {"last_error": reason[:2000], "allotted_at": None}  # no attempt under way
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


async def not_yet_due(conn: AsyncConnection, until: dict[str, datetime]) -> list[str]:
    """Claimed messages whose delay is not over: due again at its end, the claim's attempt given back (waiting
    for its time is no attempt). The ids put back."""
    put_back: list[str] = []
    for message_id, at in sorted(until.items()):
        put_back += (await conn.execute(
            update(messages).where(messages.c.id == message_id, messages.c.status == "queued")
            .values(next_attempt_at=at, attempts=messages.c.attempts - 1).returning(messages.c.id))).scalars().all()
    return put_back


async def due_at_their_delay(conn: AsyncConnection, message_ids: list[str]) -> None:
    """Delayed messages just queued are not claimed before their delay ends (`not_before`): the worker's first
    look at them is then."""
    if message_ids:
        await conn.execute(update(messages).where(messages.c.id.in_(sorted(message_ids)), messages.c.status == "queued",
                                                  messages.c.not_before.is_not(None))
                           .values(next_attempt_at=messages.c.not_before))
