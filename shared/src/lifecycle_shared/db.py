"""Database plumbing shared by every service: engine, the inbox and outbox tables.

Services use SQLAlchemy Core on an `AsyncConnection`; the runner or the route owns the
transaction, repositories never commit.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
import orjson
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
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from lifecycle_shared import tracing
from lifecycle_shared.db_errors import classify
from lifecycle_shared.events import CloudEvent, kafka_headers

plumbing_metadata = MetaData()
T = TypeVar("T")

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
    """json/jsonb values read through it are decoded by `json_value`."""
    return create_async_engine(database_url, pool_size=pool_size, max_overflow=5, pool_pre_ping=True,
                               json_deserializer=json_value)


def json_value(text: str) -> Any:
    """What `json.loads(text)` gives, by orjson where that is sure to be the same value (several times faster:
    the stage engine reads profiles' facts, traits and acquisition on every event): not when the text holds 19
    digits in a row anywhere (it may be an integer beyond 64 bits, which orjson turns into a float; digits in a
    string or a long mantissa take the standard library too, to be sure), nor when orjson refuses it (a number
    beyond a double's range, which json makes inf; nesting deeper than orjson's 1024 levels). The one difference:
    nesting deeper than the standard library's recursion reaches (several hundred levels) decodes, where
    `json.loads` raised RecursionError."""
    raw = text.encode(errors="surrogatepass")  # a lone surrogate: bytes orjson refuses, json.loads decides
    if _NINETEEN_DIGITS not in raw.translate(_DIGITS_AS_ZEROS):  # a C pass each: a regex search took longer
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


# UTF-8: the bytes of a multi-byte character are all above 0x7f, so only ASCII digits become zeros.
_DIGITS_AS_ZEROS = bytes(ord("0") if ord("0") <= byte <= ord("9") else ord(" ") for byte in range(256))
_NINETEEN_DIGITS = b"0" * 19


def create_read_engine(database_url: str, *, pool_size: int = 16) -> AsyncEngine:
    """For hot read routes (`read_only`): autocommit (no BEGIN and ROLLBACK round trips around a lone
    SELECT) and no pre-ping (no `SELECT 1` round trip per checkout); `read_only` retries a statement once
    on a fresh connection instead, when the one it got turns out dead (a restarted database). No overflow:
    under a burst, overflow connections are opened and closed per request (measured: connecting, TLS
    negotiation and re-preparing statements took a fifth of the API's CPU); requests queue for one instead.
    Its connections show in pg_stat_activity as `application_name` READS_APPLICATION."""
    return create_async_engine(database_url, pool_size=pool_size, max_overflow=0, pool_pre_ping=False,
                               isolation_level="AUTOCOMMIT",
                               connect_args={"server_settings": {"application_name": READS_APPLICATION}})


READS_APPLICATION = "lifecycle-reads"


async def read_only(engine: AsyncEngine, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`read(conn)` on a connection of `engine` (a `create_read_engine`); once more on a new connection when
    the database dropped the pooled one (SQLAlchemy then invalidates the pool's older connections too; after
    a drop seen by `fetch_row`, the pool is replaced, as SQLAlchemy would have done)."""
    for attempt in (1, 2):
        try:
            async with engine.connect() as conn:
                return await read(conn)
        except DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
        except ConnectionDropped:
            if attempt == 2:
                raise
            await engine.dispose()  # the pool's other connections are likely as dead (a restarted database)
    raise AssertionError("unreachable")


class ConnectionDropped(Exception):
    """`fetch_row`'s connection was gone (asyncpg said so); the connection is invalidated."""


async def fetch_row(conn: AsyncConnection, statement: str, *args: object) -> Mapping[str, Any] | None:
    """The first row of a fixed statement (`$1`-style parameters) run on the driver's own connection: asyncpg
    prepares it once per connection and decodes the row itself (json/jsonb with SQLAlchemy's codecs; cast
    uuid columns to text in the statement). For the hottest read only: SQLAlchemy's execution path around
    the same prepared statement (cache lookup, parameter and result processing) cost 0.31 ms of CPU of a
    0.38 ms lookup (bench/notes/reads.md). A dropped connection raises `ConnectionDropped`."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        row = await driver.fetchrow(statement, *args)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as error:
        # InternalClientError: the protocol was still consuming the server's unsolicited FATAL (a terminated
        # backend) when the statement came; the connection is as dead as a closed one.
        broken = driver.is_closed() or isinstance(error, asyncpg.InternalClientError)
        if not broken and classify(error) != "infrastructure":
            raise
        await conn.invalidate(error)
        raise ConnectionDropped(type(error).__name__) from error
    return None if row is None else dict(row.items())


async def ping(conn: AsyncConnection) -> None:
    """The cheapest round trip: raises when the database does not answer."""
    await conn.execute(text("SELECT 1"))


async def claim_new_event_ids(conn: AsyncConnection, events: Sequence[tuple[str, str, str | None]]) -> set[str]:
    """Record (event_id, topic, digest) in the inbox; return the ids not seen before (one statement)."""
    unique = {event_id: (topic, digest) for event_id, topic, digest in reversed(events)}  # first one wins
    if not unique:
        return set()
    rows = await conn.execute(_CLAIM, {"ids": list(unique), "topics": [topic for topic, _ in unique.values()],
                                       "digests": [digest for _, digest in unique.values()]})
    return set(rows.scalars())


# Arrays, not one bind parameter per value: the same statement text for every batch (compiled and
# prepared once), and no per-row work in SQLAlchemy.
_CLAIM = text(
    "INSERT INTO inbox (event_id, topic, digest) "
    "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:topics AS text[]), CAST(:digests AS text[])) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id")


async def digests_of(conn: AsyncConnection, event_ids: list[str]) -> dict[str, str | None]:
    """The digests recorded in the inbox for these ids."""
    if not event_ids:
        return {}
    rows = await conn.execute(select(inbox.c.event_id, inbox.c.digest).where(inbox.c.event_id.in_(event_ids)))
    return {row.event_id: row.digest for row in rows}


async def add_to_outbox(conn: AsyncConnection, messages: Iterable[tuple[str, CloudEvent]], *,
                        trace: Sequence[Mapping[str, str]] | None = None) -> int:
    """Write (topic, event) pairs to the outbox in one statement, in order (the relay publishes by id);
    returns how many. Each row keeps the W3C trace context its record will carry (`traceparent`): `trace[i]`
    for the i-th event (the runner's choice per event), else, when tracing is on, the current span's."""
    if trace is None:
        current = tracing.headers_of() if tracing.enabled() else {}
    topics, keys, ids, payloads, headers = [], [], [], [], []
    for n, (topic, event) in enumerate(messages):
        topics.append(topic)
        keys.append(event.subject)
        ids.append(event.id)
        payloads.append(event.to_bytes())
        context = trace[n] if trace is not None else current
        headers.append(_headers_json(event.type) if not context else
                       json.dumps({**json.loads(_headers_json(event.type)), **context}))
    if topics:
        await conn.execute(_ADD_TO_OUTBOX, {"topics": topics, "keys": keys, "ids": ids, "payloads": payloads,
                                            "headers": headers})
    return len(topics)


_ADD_TO_OUTBOX = text(
    "INSERT INTO outbox (topic, key, event_id, payload, headers) "
    "SELECT topic, key, event_id, payload, CAST(headers AS jsonb) FROM unnest(CAST(:topics AS text[]), "
    "CAST(:keys AS text[]), CAST(:ids AS text[]), CAST(:payloads AS bytea[]), CAST(:headers AS text[])) "
    "WITH ORDINALITY AS r (topic, key, event_id, payload, headers, n) ORDER BY n")


@functools.lru_cache(maxsize=256)  # a service emits a handful of event types
def _headers_json(event_type: str) -> str:
    """The record headers an event of this type carries, as the outbox keeps them (JSON)."""
    return json.dumps({name: value.decode() for name, value in kafka_headers(event_type)})


_ERASURE = text("SELECT erasure_id::text, requested_at, counts FROM erasures WHERE erasure_id = CAST(:id AS uuid)")


async def recorded_erasure(conn: AsyncConnection, erasure_id: str) -> Any | None:
    """The row (erasure_id, requested_at, counts) of the `erasures` table the stage engine, messaging and loyalty
    each keep alike (docs/erasure.md), for `erasure_id` (a uuid); None: no such erasure applied here."""
    return (await conn.execute(_ERASURE, {"id": erasure_id})).first()
