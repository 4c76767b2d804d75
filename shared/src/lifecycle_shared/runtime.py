"""One composition root for a service's infrastructure: engine, producer, consumers, relay.

A service's lifespan builds a `ServiceRuntime`, starts it, and stops it on shutdown. Nothing
connects at import time.

Roles (`settings.role`, `serve --role`): `consumer` runs the consumers, the workers and the outbox relay;
`api` runs none of them (the routes only); `all` runs everything. Both roles run the topic watch,
`prepare` and the `shared` tasks (what routes and handlers both read, such as the rule set in force).
Readiness reflects what the role needs: the consumer side needs the database, the broker and the topics;
the API side needs `api_needs` (the database unless the service says otherwise) and the checks the service
adds (`add_check`); every role needs its tasks alive.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiokafka import AIOKafkaProducer

from lifecycle_shared.db import create_engine, ping
from lifecycle_shared.erasure import pepper_of
from lifecycle_shared.errors import describe_error
from lifecycle_shared.kafka.clients import make_consumer, make_producer
from lifecycle_shared.kafka.lag import LagMonitor
from lifecycle_shared.kafka.polling import within
from lifecycle_shared.kafka.registry import Router, routed_types
from lifecycle_shared.kafka.relay import OutboxRelay
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.kafka.watch import TopicWatch
from lifecycle_shared.keyring import RemoteKeyring
from lifecycle_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

Role = Literal["api", "consumer", "all"]
ROLES: tuple[Role, ...] = ("api", "consumer", "all")
# What `api_needs` may name: the infrastructure checks `readiness` makes.
INFRA_CHECKS = ("database", "broker", "topics")
# How long a stopping service's relay may take over its last round before it is cancelled.
RELAY_FINISH_S = 10.0
# How long a cancelled consumer task, then its consumer's close, may take before the stop goes on without them.
CONSUMER_STOP_S = 10.0


@dataclass(frozen=True)
class ConsumerSpec:
    group: str
    topics: list[str]
    route: Router
    # False for a consumer the service's readiness does not wait on (ingest's erasure consumer: events are still
    # accepted while its database is away).
    gates_readiness: bool = True


def remote_keyring(settings: ServiceSettings) -> RemoteKeyring | None:
    """Ingest's key API, when LIFECYCLE_KEYS_URL is set (it needs the pepper too: its token derives from it)."""
    if not settings.keys_url:
        return None
    pepper = pepper_of(settings.erasure_pepper)
    if pepper is None:
        raise ValueError("LIFECYCLE_KEYS_URL is set but LIFECYCLE_ERASURE_PEPPER is not: the key API's token "
                         "derives from the pepper")
    return RemoteKeyring(settings.keys_url, pepper, ttl_s=settings.keys_cache_s)


class ServiceRuntime:
    def __init__(self, *, service: str, settings: ServiceSettings,
                 consumers: tuple[ConsumerSpec, ...] = (), relay: bool = False,
                 workers: tuple[Callable[[ServiceRuntime], Awaitable[None]], ...] = (),
                 shared: tuple[Callable[[ServiceRuntime], Awaitable[None]], ...] = (),
                 prepare: Callable[[ServiceRuntime], Awaitable[None]] | None = None,
                 api_needs: tuple[str, ...] = ("database",)) -> None:
        """`prepare` runs once the broker is reachable and before any consumer starts (e.g. to load
        what handlers and routes read, such as the rule set in force); `workers` run beside the consumers
        (roles `consumer` and `all`); `shared` tasks run in every role. `api_needs`: which of
        INFRA_CHECKS the routes need to be ready."""
        unknown = set(api_needs) - set(INFRA_CHECKS)
        if unknown:
            raise ValueError(f"api_needs: unknown checks {sorted(unknown)}; known: {INFRA_CHECKS}")
        self.service = service
        self.settings = settings
        self.role: Role = settings.role
        self.engine = create_engine(settings.database_url)
        self.producer: AIOKafkaProducer = make_producer(settings.kafka)
        consuming = self.role in ("consumer", "all")
        # Customers' data keys (docs/erasure.md): to open sealed records and seal what the outbox publishes.
        self.keyring = remote_keyring(settings) if consuming else None
        self.relay = (OutboxRelay(engine=self.engine, producer=self.producer, service=service, keyring=self.keyring)
                      if relay and consuming else None)
        self._consumer_specs = consumers if consuming else ()
        self._workers = (workers if consuming else ()) + shared
        self._needs = set(api_needs) if self.role in ("api", "all") else set()
        if consuming and (any(spec.gates_readiness for spec in consumers) or workers or relay):
            self._needs |= set(INFRA_CHECKS)
        self._checks: dict[str, Callable[[], bool]] = {}
        self._prepare = prepare
        self._tasks: list[asyncio.Task[None]] = []
        self._consumers: list[tuple[ConsumerRunner, asyncio.Task[None]]] = []
        self._runners: list[ConsumerRunner] = []
        self._stopping: asyncio.Future[None] | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self.topics = TopicWatch(settings.kafka, on_restart=self._rejoin)

    async def start(self) -> None:
        await self.topics.check()  # creates the topics (the one place that does)
        await self.producer.start()
        self._tasks.append(self._spawn("topic-watch", self.topics.run))
        if self._prepare:
            await self._prepare(self)
        if self.relay:
            self._relay_task = self._spawn("outbox-relay", self.relay.run)
            self._tasks.append(self._relay_task)
        self._start_consumers()
        if self._consumer_specs:  # lag from the broker on a timer: it grows even while a consumer is stuck
            monitor = LagMonitor(self.settings.kafka, {spec.group: spec.topics for spec in self._consumer_specs},
                                 interval_s=self.settings.kafka.lag_interval_s)
            self._tasks.append(self._spawn("consumer-lag", monitor.run))
        for worker in self._workers:
            self._tasks.append(self._spawn(worker.__name__, functools.partial(worker, self)))

    def _start_consumers(self) -> None:
        for spec in self._consumer_specs:
            consumer = make_consumer(self.settings.kafka, group_id=spec.group, topics=spec.topics)
            runner = ConsumerRunner(
                name=spec.group, consumer=consumer, producer=self.producer, engine=self.engine,
                route=spec.route, on_applied=self.relay.wake if self.relay else lambda: None,
                event_types=routed_types(spec.route), keyring=self.keyring,
            )
            if spec.gates_readiness:
                self._runners.append(runner)
            self._consumers.append((runner, self._spawn(spec.group, runner.run)))

    async def _stop_consumers(self, *, drain_s: float = 0.0) -> None:
        runners, self._consumers, self._runners = self._consumers, [], []
        # Shielded: a rejoin cancelled half-way (the service stopping) still stops what it took over.
        self._stopping = asyncio.ensure_future(self._stop(runners, drain_s))
        await asyncio.shield(self._stopping)

    @staticmethod
    async def _stop(runners: list[tuple[ConsumerRunner, asyncio.Task[None]]], drain_s: float) -> None:
        """Each runner drained (its batch in hand applied and committed) within `drain_s`, then cancelled;
        then each consumer closed, which leaves the group: its partitions move on at once."""
        tasks = [task for _, task in runners]
        if drain_s > 0 and tasks:
            for runner, _ in runners:
                runner.drain()
            _, late = await asyncio.wait(tasks, timeout=drain_s)
            if late:
                log.warning("consumers did not drain in time; cancelled",
                            extra={"consumers": sorted(task.get_name() for task in late), "drain_s": drain_s})
        for task in tasks:
            task.cancel()
        # Bounded however a cancelled aiokafka call behaves (`within`): a stop never hangs.
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=CONSUMER_STOP_S)
            if stuck:
                log.warning("consumers did not end after cancel; left behind",
                            extra={"consumers": sorted(task.get_name() for task in stuck)})
        for runner, _ in runners:
            stop = asyncio.ensure_future(runner.consumer.stop())
            if not await within(stop, CONSUMER_STOP_S):
                log.warning("consumer did not stop in time; left behind")
            elif not stop.cancelled() and (error := stop.exception()) is not None:
                # a consumer of a vanished group may not stop cleanly
                log.warning("consumer did not stop cleanly", extra={"error": describe_error(error)})

    async def _rejoin(self) -> None:
        """After the broker lost its state: fresh consumers (committed offsets are gone; they read the
        re-created topics from the start, and the inbox drops what was applied) and fresh metadata."""
        log.warning("broker restarted: rejoining with fresh consumers", extra={"service": self.service})
        await self._stop_consumers()
        await self.producer.client.force_metadata_update()
        self._start_consumers()

    def _spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        async def supervised() -> None:
            while True:
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.exception("task crashed; restarting", extra={"task": name, "error": describe_error(error)})
                    await asyncio.sleep(1)

        return asyncio.create_task(supervised(), name=name)

    async def stop(self) -> None:
        """A graceful stop (SIGTERM): the topic watch first (it may be starting consumers), then the
        consumers drained (`kafka.drain_timeout_s`), then the relay finished (one last round publishes
        what their last batches wrote), then the workers."""
        watch, others = self._tasks[:1], self._tasks[1:]
        await self._cancel(watch)
        if self._stopping is not None:
            await self._stopping
        await self._stop_consumers(drain_s=self.settings.kafka.drain_timeout_s)
        if self.relay and self._relay_task:
            self.relay.finish()
            await asyncio.wait([self._relay_task], timeout=RELAY_FINISH_S)
        await self._cancel(others)
        await self.topics.remove_sentinel()
        await self.producer.stop()
        if self.keyring is not None:
            await self.keyring.close()
        await self.engine.dispose()

    @staticmethod
    async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
        """Cancelled, and awaited for at most CONSUMER_STOP_S (a task stuck in a cancel-deaf call is left)."""
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=CONSUMER_STOP_S)
            if stuck:
                log.warning("tasks did not end after cancel; left behind",
                            extra={"tasks": sorted(task.get_name() for task in stuck)})

    def add_check(self, name: str, check: Callable[[], bool]) -> None:
        """One more readiness check of this process (e.g. ingest's keys loaded at least once)."""
        self._checks[name] = check

    async def readiness(self) -> dict[str, bool]:
        """What this role needs, each true or false (see the module's docstring)."""
        checks = {"workers": all(not t.done() for t in [*self._tasks, *(task for _, task in self._consumers)])}
        if self._runners:  # False while a consumer waits for the database or broker to come back (a failover)
            checks["consumers"] = all(runner.healthy for runner in self._runners)
        if "topics" in self._needs:
            checks["topics"] = self.topics.healthy
        if "database" in self._needs:
            checks["database"] = False
            try:
                async with self.engine.connect() as conn:
                    await asyncio.wait_for(ping(conn), 2)
                checks["database"] = True
            except Exception as error:
                log.warning("readiness: database unreachable", extra={"error": describe_error(error)})
        if "broker" in self._needs:
            checks["broker"] = False
            try:
                await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 2)
                checks["broker"] = True
            except Exception as error:
                log.warning("readiness: broker unreachable", extra={"error": describe_error(error)})
        for name, check in self._checks.items():
            checks[name] = check()
        return checks
