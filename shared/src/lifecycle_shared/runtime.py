"""One composition root for a service's infrastructure: engine, producer, consumers, relay.

A service's lifespan builds a `ServiceRuntime`, starts it, and stops it on shutdown. Nothing
connects at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text

from lifecycle_shared.db import create_engine
from lifecycle_shared.kafka.clients import ensure_topics, make_consumer, make_producer
from lifecycle_shared.kafka.relay import OutboxRelay
from lifecycle_shared.kafka.runner import ConsumerRunner, Handler
from lifecycle_shared.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    group: str
    topics: list[str]
    route: Callable[[str], Handler | None]


class ServiceRuntime:
    def __init__(self, *, service: str, settings: ServiceSettings,
                 consumers: tuple[ConsumerSpec, ...] = (), relay: bool = False,
                 workers: tuple[Callable[[ServiceRuntime], Awaitable[None]], ...] = ()) -> None:
        self.service = service
        self.settings = settings
        self.engine = create_engine(settings.database_url)
        self.producer: AIOKafkaProducer = make_producer(settings.kafka)
        self.relay = OutboxRelay(engine=self.engine, producer=self.producer, service=service) if relay else None
        self._consumer_specs = consumers
        self._workers = workers
        self._tasks: list[asyncio.Task] = []
        self._consumers: list[AIOKafkaConsumer] = []

    async def start(self) -> None:
        await ensure_topics(self.settings.kafka)
        await self.producer.start()
        if self.relay:
            self._spawn("outbox-relay", self.relay.run)
        for spec in self._consumer_specs:
            consumer = make_consumer(self.settings.kafka, group_id=spec.group, topics=spec.topics)
            self._consumers.append(consumer)
            runner = ConsumerRunner(
                name=spec.group, consumer=consumer, producer=self.producer, engine=self.engine,
                route=spec.route, on_committed=self.relay.wake if self.relay else lambda: None,
            )
            self._spawn(spec.group, runner.run)
        for worker in self._workers:
            self._spawn(worker.__name__, lambda worker=worker: worker(self))

    def _spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        async def supervised() -> None:
            while True:
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("task crashed; restarting", extra={"task": name})
                    await asyncio.sleep(1)

        self._tasks.append(asyncio.create_task(supervised(), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in self._consumers:
            await consumer.stop()
        await self.producer.stop()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, bool]:
        checks = {"database": False, "broker": False, "workers": all(not t.done() for t in self._tasks)}
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2)
            checks["database"] = True
        except Exception:
            log.warning("readiness: database unreachable", exc_info=True)
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 2)
            checks["broker"] = True
        except Exception:
            log.warning("readiness: broker unreachable", exc_info=True)
        return checks
