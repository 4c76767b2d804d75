"""Consumer lag measured on a timer, from the broker: each partition's end offset against the group's
committed offset. The runner's own figure moves only when it commits, so a consumer stuck on a record (or
not running at all) would show the lag it had before; this one keeps growing while records arrive.

One admin client (the groups' committed offsets) and one group-less consumer (the end offsets) per process,
shared by its consumers. A partition the group never committed counts from its beginning offset (the
consumers read from the earliest)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from lifecycle_shared import metrics
from lifecycle_shared.errors import describe_error
from lifecycle_shared.kafka.clients import never_auto_create_topics
from lifecycle_shared.settings import KafkaSettings

log = logging.getLogger(__name__)


class LagMonitor:
    """`groups`: consumer name (the metrics' `consumer` label; the group id without the topic prefix) ->
    the topics it reads."""

    def __init__(self, settings: KafkaSettings, groups: Mapping[str, Sequence[str]], *,
                 interval_s: float = 15.0) -> None:
        never_auto_create_topics()
        self._settings = settings
        self._groups = {name: list(topics) for name, topics in groups.items()}
        self._interval_s = interval_s
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10_000)
        self._probe = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                       enable_auto_commit=False, request_timeout_ms=10_000)
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self._admin.start()
            await self._probe.start()
            self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._probe.stop()
            await self._admin.close()

    async def run(self) -> None:
        await self.start()
        try:
            while True:
                try:
                    await self.measure_once()
                except Exception as error:  # noqa: BLE001 - the broker is away: measure again next time
                    log.warning("consumer lag not measured", extra={"error": describe_error(error)})
                await asyncio.sleep(self._interval_s)
        finally:
            await self.stop()

    async def measure_once(self) -> dict[tuple[str, str, int], int]:
        """Measure every group's lag per partition, set the gauges and return them."""
        await self.start()
        await self._probe._client.force_metadata_update()  # new partitions and topics are seen
        measured: dict[tuple[str, str, int], int] = {}
        for name, topics in self._groups.items():
            partitions = [TopicPartition(topic, p) for topic in topics
                          for p in sorted(self._probe.partitions_for_topic(topic) or ())]
            if not partitions:
                continue
            committed = await self._admin.list_consumer_group_offsets(self._settings.topic_prefix + name,
                                                                      partitions=partitions)
            ends = await self._probe.end_offsets(partitions)
            starts = await self._probe.beginning_offsets(partitions)
            for tp in partitions:
                done = committed.get(tp)
                position = done.offset if done is not None and done.offset >= 0 else starts[tp]
                lag = max(0, ends[tp] - position)
                metrics.CONSUMER_LAG.labels(name, tp.topic, str(tp.partition)).set(lag)
                measured[(name, tp.topic, tp.partition)] = lag
        return measured
