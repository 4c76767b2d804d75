"""All SQL of the messaging service. Functions take the caller's connection, never commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Text, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import contacts, messages


async def add_messages(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert messages (one statement); an id already there is the same message: skipped."""
    if rows:
        await conn.execute(insert(messages).on_conflict_do_nothing(index_elements=["id"]), rows)


Contact = tuple[str, list[str]]  # (address, every id it came with)


async def remember_contacts(conn: AsyncConnection, found: dict[str, Contact]) -> None:
    """Record customer id -> (address, linked ids), the latest one winning; one statement."""
    if found:
        stmt = insert(contacts)
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["customer_id"], set_={
                "email": stmt.excluded.email, "linked_ids": stmt.excluded.linked_ids, "updated_at": func.now()}),
            [{"customer_id": customer_id, "email": email, "linked_ids": ids}
             for customer_id, (email, ids) in sorted(found.items())])


async def known_contacts(conn: AsyncConnection, customer_ids: list[str]) -> dict[str, Contact]:
    if not customer_ids:
        return {}
    rows = await conn.execute(select(contacts.c.customer_id, contacts.c.email, contacts.c.linked_ids)
                              .where(contacts.c.customer_id.in_(customer_ids)))
    return {row.customer_id: (row.email, list(row.linked_ids)) for row in rows}


_ids = bindparam("b_ids", type_=ARRAY(Text))
_release = (
    update(messages)
    .where(messages.c.status == "awaiting_contact", messages.c.linked_ids.overlap(_ids))
    .values(status="queued", recipient=bindparam("b_recipient"), next_attempt_at=func.now(),
            linked_ids=func.array(select(func.unnest(func.array_cat(messages.c.linked_ids, _ids)))
                                  .correlate(messages).distinct().scalar_subquery()))
)


async def release_awaiting(conn: AsyncConnection, found: list[Contact]) -> None:
    """Queue the messages waiting for an address, for (address, ids of one customer) pairs."""
    if found:
        await conn.execute(_release, [{"b_ids": ids, "b_recipient": address} for address, ids in found])


async def release_for_recent_contacts(conn: AsyncConnection, *, within_s: float) -> int:
    """Queue waiting messages of customers whose address was recorded in the last `within_s`.

    The handlers release messages as addresses arrive; this sweep closes the one gap they leave:
    a message and its address written by two concurrent transactions, neither seeing the other.
    """
    result = await conn.execute(text(
        "UPDATE messages m SET status = 'queued', recipient = c.email, next_attempt_at = now(), "
        "linked_ids = ARRAY(SELECT DISTINCT unnest(m.linked_ids || c.linked_ids)) "
        "FROM contacts c "
        "WHERE c.updated_at > now() - make_interval(secs => :within_s) "
        "AND m.status = 'awaiting_contact' AND m.linked_ids @> ARRAY[c.customer_id]"
    ), {"within_s": within_s})
    return result.rowcount


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


async def mark_sent(conn: AsyncConnection, *, message_id: str) -> None:
    await conn.execute(update(messages).where(messages.c.id == message_id, messages.c.status == "queued")
                       .values(status="sent", sent_at=func.now(), last_error=None))


async def mark_unsent(conn: AsyncConnection, *, message_id: str, reason: str, retry_in_s: float | None) -> None:
    """A failed attempt: retried after `retry_in_s`, or given up (`failed`) when it is None."""
    values: dict[str, Any] = {"last_error": reason[:2000]}
    if retry_in_s is None:
        values["status"] = "failed"
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
