"""Database plumbing shared by every service: engine, the inbox and outbox tables.

Services use SQLAlchemy Core on an `AsyncConnection`; the runner or the route owns the
transaction, repositories never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from lifecycle_shared.events import CloudEvent

plumbing_metadata = MetaData()

# Event ids this service has already applied: the idempotency guard of every consumer.
inbox = Table(
    "inbox",
    plumbing_metadata,
    Column("event_id", Text, primary_key=True),
    Column("topic", Text, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The event's content digest (CloudEvent extension `digest`), to tell a retry from a reused id.
    Column("digest", Text),
)

# Events written in the same transaction as the change that caused them; the relay publishes them.
outbox = Table(
    "outbox",
    plumbing_metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # A row the broker can never take (too large, say) is set aside here, with why, for an operator.
    Column("dead_at", DateTime(timezone=True)),
    Column("last_error", Text),
)


def create_engine(database_url: str, *, pool_size: int = 5) -> AsyncEngine:
    return create_async_engine(database_url, pool_size=pool_size, max_overflow=5, pool_pre_ping=True)


async def claim_new_event_ids(conn: AsyncConnection, events: Sequence[tuple[str, str, str | None]]) -> set[str]:
    """Record (event_id, topic, digest) in the inbox; return the ids not seen before (one statement)."""
    unique = {event_id: (topic, digest) for event_id, topic, digest in reversed(events)}  # first one wins
    if not unique:
        return set()
    stmt = (
        insert(inbox)
        .values([{"event_id": event_id, "topic": topic, "digest": digest}
                 for event_id, (topic, digest) in unique.items()])
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(inbox.c.event_id)
    )
    return set((await conn.execute(stmt)).scalars())


async def digests_of(conn: AsyncConnection, event_ids: list[str]) -> dict[str, str | None]:
    """The digests recorded in the inbox for these ids."""
    if not event_ids:
        return {}
    rows = await conn.execute(select(inbox.c.event_id, inbox.c.digest).where(inbox.c.event_id.in_(event_ids)))
    return {row.event_id: row.digest for row in rows}


async def add_to_outbox(conn: AsyncConnection, messages: Iterable[tuple[str, CloudEvent]]) -> int:
    """Write (topic, event) pairs to the outbox in one statement; returns how many."""
    rows = [
        {
            "topic": topic,
            "key": event.subject,
            "event_id": event.id,
            "payload": event.to_bytes(),
            "headers": {name: value.decode() for name, value in event.kafka_headers()},
        }
        for topic, event in messages
    ]
    if rows:
        await conn.execute(insert(outbox), rows)
    return len(rows)
