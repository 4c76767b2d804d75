"""The outbox relay: publishes rows written by handlers (acks=all), then deletes them.

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several instances can run. A row is deleted
only after the broker acknowledged it: a crash in between republishes it, and consumers dedup.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_shared import metrics
from lifecycle_shared.db import outbox

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(self, *, engine: AsyncEngine, producer: AIOKafkaProducer, service: str,
                 batch_size: int = 1000, idle_poll_s: float = 0.5) -> None:
        self._engine = engine
        self._producer = producer
        self._service = service
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                published = await self.publish_once()
            except Exception:
                log.exception("outbox relay failed; retrying")
                published = 0
                await asyncio.sleep(1)
            if published < self._batch_size:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
                except TimeoutError:
                    pass
                self._wake.clear()

    async def publish_once(self) -> int:
        async with self._engine.begin() as conn:
            rows = (await conn.execute(
                select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload, outbox.c.headers)
                .order_by(outbox.c.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )).all()
            if not rows:
                metrics.OUTBOX_BACKLOG.labels(self._service).set(0)
                return 0
            futures = [
                await self._producer.send(
                    row.topic, row.payload, key=row.key.encode(),
                    headers=[(name, value.encode()) for name, value in row.headers.items()],
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(delete(outbox).where(outbox.c.id.in_([row.id for row in rows])))
            backlog = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
        metrics.OUTBOX_BACKLOG.labels(self._service).set(backlog)
        metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(rows))
        return len(rows)
