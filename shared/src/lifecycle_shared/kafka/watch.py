"""The topic watch: notices topics that vanished (a broker that keeps them in memory, as the
embedded Tansu does, comes back from a restart empty), re-creates them with the configured
partition count, and has the service rejoin with fresh consumers.

While topics are missing the service is not ready (`/readyz` says so and ingest answers 503).
A restart that another service already repaired is still noticed through a sentinel topic this
process creates and nothing else touches (only where `detect_broker_restarts` is on: the
embedded broker; a real Kafka cluster keeps its topics).

Every check is one metadata request for all topics, which creates nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from lifecycle_shared.errors import describe_error
from lifecycle_shared.kafka.clients import never_auto_create_topics
from lifecycle_shared.settings import KafkaSettings
from lifecycle_shared.topics import SENTINEL_PREFIX

log = logging.getLogger(__name__)


class TopicWatch:
    def __init__(self, settings: KafkaSettings, *, on_restart: Callable[[], Awaitable[None]]) -> None:
        self._settings = settings
        self._on_restart = on_restart
        self._expected = {name: settings.partitions for name in settings.topics.all_with_dlq()}
        self._sentinel = (f"{settings.topic_prefix}{SENTINEL_PREFIX}{uuid.uuid4().hex[:12]}"
                          if settings.detect_broker_restarts else None)
        self.healthy = False
        self._checked = False  # the first check creates what this service needs
        self._short: set[str] = set()

    async def check(self) -> None:
        """Compare the broker's topics with what this service needs; repair what is missing."""
        never_auto_create_topics()
        admin = AIOKafkaAdminClient(bootstrap_servers=self._settings.bootstrap_servers, request_timeout_ms=5000)
        await admin.start()
        try:
            present = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics() if not t["error_code"]}
            missing = {name: count for name, count in self._expected.items() if name not in present}
            sentinel_lost = self._sentinel is not None and self._sentinel not in present
            for name in [n for n, count in present.items() if count < self._expected.get(n, 0)]:
                if name not in self._short:  # created by a foreign client: kept, with what it holds
                    self._short.add(name)
                    log.warning("topic has fewer partitions than configured; kept as it is",
                                extra={"topic": name, "partitions": present[name]})
            if missing or sentinel_lost:
                self.healthy = False
                if self._checked:
                    log.warning("topics missing; re-creating them",
                                extra={"topics": sorted(missing), "broker_restarted": sentinel_lost})
                lost = {self._sentinel: 1} if sentinel_lost and self._sentinel is not None else {}
                await _create(admin, {**missing, **lost}, replication_factor=self._settings.replication_factor)
        finally:
            await admin.close()
        if sentinel_lost and self._checked:
            await self._on_restart()
        self._checked = self.healthy = True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.topic_check_interval_s)
            try:
                await self.check()
            except Exception as error:  # noqa: BLE001 - broker unreachable: not ready, look again soon
                if self.healthy:
                    log.warning("topic check failed", extra={"error": describe_error(error)})
                self.healthy = False

    async def remove_sentinel(self) -> None:
        if self._sentinel is None:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self._settings.bootstrap_servers, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.delete_topics([self._sentinel])
        except Exception as error:  # noqa: BLE001 - best effort on the way out
            log.info("sentinel topic not removed", extra={"error": describe_error(error)})
        finally:
            await admin.close()


async def _create(admin: AIOKafkaAdminClient, topics: dict[str, int], *, replication_factor: int) -> None:
    try:
        await admin.create_topics([NewTopic(name, count, replication_factor) for name, count in topics.items()])
    except TopicAlreadyExistsError:  # another service was quicker
        pass
