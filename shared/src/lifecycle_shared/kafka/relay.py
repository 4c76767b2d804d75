"""The outbox relay: publishes rows written by handlers (acks=all), then deletes them.

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several instances can run. A row is deleted
only after the broker acknowledged it: a crash in between republishes it, and consumers dedup.
Each row's outcome is its own: a row the broker can never take (larger than a request may be,
an invalid topic) is set aside (`dead_at`, `last_error`) and logged and counted, and the rows
behind it go on; a row that failed for a passing reason (the broker is down) is tried again.

`finish` ends the relay gracefully: one more round (what the consumers' last batches wrote), then `run`
returns - never cancelled mid-round, which would publish rows without deleting them (published again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidTopicError, MessageSizeTooLargeError
from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lifecycle_shared import metrics
from lifecycle_shared.db import outbox
from lifecycle_shared.errors import describe_error
from lifecycle_shared.events import TYPE_HEADER
from lifecycle_shared.keyring import Keyring, SubjectKey
from lifecycle_shared.sealing import UNSEALED_TYPES, seal_value

log = logging.getLogger(__name__)

NEVER_PUBLISHABLE = (MessageSizeTooLargeError, InvalidTopicError)
OutboxRow = Row[*tuple[Any, ...]]


class OutboxRelay:
    def __init__(self, *, engine: AsyncEngine, producer: AIOKafkaProducer, service: str,
                 batch_size: int = 1000, idle_poll_s: float = 0.5, keyring: Keyring | None = None) -> None:
        """`keyring`: where customers' data keys come from; set, every event but UNSEALED_TYPES is published
        sealed under its customer's key (docs/erasure.md); None, in clear."""
        self._engine = engine
        self._keyring = keyring
        self._producer = producer
        self._service = service
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._finishing = False
        metrics.initialise_service(service)

    def wake(self) -> None:
        self._wake.set()

    def finish(self) -> None:
        """Publish what is there now, then return from `run`."""
        self._finishing = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            finishing = self._finishing  # read before the round: the round publishes what was written before
            try:
                published = await self.publish_once()
            except Exception as error:  # noqa: BLE001 - the database is away: try again shortly
                log.warning("outbox relay failed; retrying", extra={"error": describe_error(error)})
                published = 0
                if finishing:
                    return  # another instance publishes it
                await asyncio.sleep(1)
            if finishing and published < self._batch_size:
                return
            if published < self._batch_size:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
                except TimeoutError:
                    pass
                self._wake.clear()

    async def publish_once(self) -> int:
        async with self._engine.begin() as conn:
            rows = (await conn.execute(
                select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.event_id, outbox.c.payload,
                       outbox.c.headers)
                .where(outbox.c.dead_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )).all()
            if not rows:
                metrics.OUTBOX_BACKLOG.labels(self._service).set(0)
                metrics.OUTBOX_OLDEST_AGE.labels(self._service).set(0)
                return 0
            outcomes = await self._send(rows)
            published = [row.id for row, error in outcomes if error is None]
            if published:
                await conn.execute(delete(outbox).where(outbox.c.id.in_(published)))
            await self._set_aside(conn, [(row, error) for row, error in outcomes
                                         if isinstance(error, NEVER_PUBLISHABLE)])
            backlog, oldest_age = (await conn.execute(
                select(func.count(),
                       func.coalesce(func.extract("epoch", func.now() - func.min(outbox.c.created_at)), 0))
                .select_from(outbox).where(outbox.c.dead_at.is_(None)))).one()
        metrics.OUTBOX_BACKLOG.labels(self._service).set(backlog)
        metrics.OUTBOX_OLDEST_AGE.labels(self._service).set(max(0.0, float(oldest_age)))
        metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(published))
        if len(published) < len(rows):
            log.warning("outbox rows not published", extra={"service": self._service,
                                                            "failed": len(rows) - len(published)})
        return len(published)

    async def _send(self, rows: Sequence[OutboxRow]) -> list[tuple[OutboxRow, BaseException | None]]:
        """Each row sent with the error that kept it from the broker, or None once acknowledged. At
        the first passing refusal (no metadata: the broker is away) the round ends: the rest would
        wait the same timeout each, and must not overtake the rows before them."""
        pending: list[tuple[OutboxRow, asyncio.Future[Any]]] = []
        outcomes: list[tuple[OutboxRow, BaseException | None]] = []
        keys = await self._keys(rows)
        for row in rows:
            try:
                headers = [(name, value.encode()) for name, value in row.headers.items()]
                key, value = row.key, row.payload
                if row.key in keys and row.headers.get(TYPE_HEADER) not in UNSEALED_TYPES:
                    key, subject_key = keys[row.key]
                    value = seal_value(value, key_id=key, key=subject_key)
                pending.append((row, await self._producer.send(row.topic, value, key=key.encode(), headers=headers)))
            except Exception as error:  # noqa: BLE001 - refused before sending (too large, say)
                outcomes.append((row, error))
                if not isinstance(error, NEVER_PUBLISHABLE):
                    break
        acks = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
        outcomes += [(row, ack if isinstance(ack, BaseException) else None)
                     for (row, _), ack in zip(pending, acks, strict=True)]
        return outcomes

    async def _keys(self, rows: Sequence[OutboxRow]) -> dict[str, SubjectKey]:
        """The data key of each customer the rows to seal are about (none without a keyring). KeysUnavailable
        ends the round: nothing is published in clear that should be sealed."""
        if self._keyring is None:
            return {}
        customers = {row.key for row in rows if row.headers.get(TYPE_HEADER) not in UNSEALED_TYPES}
        return await self._keyring.keys_for(customers) if customers else {}

    async def _set_aside(self, conn: AsyncConnection, dead: list[tuple[OutboxRow, BaseException]]) -> None:
        for row, error in dead:
            await conn.execute(update(outbox).where(outbox.c.id == row.id)
                               .values(dead_at=func.now(), last_error=describe_error(error)))
            metrics.OUTBOX_DEAD.labels(self._service).inc()
            log.error("outbox row can never be published; set aside", extra={
                "service": self._service, "event_id": row.event_id, "topic": row.topic,
                "error": describe_error(error)})
