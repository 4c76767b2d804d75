"""Consumer lag per group and topic, from the broker: each partition's end offset minus the group's committed
offset (a partition never committed counts from its beginning, as the consumers read from the earliest).

The figure lifecycle_shared.kafka.lag.LagMonitor computes, kept per topic (which of its topics a group is
behind on) and measured on demand by the bench rather than on the services' timer. Tansu under-reports end
offsets by about one batch per partition (PERFORMANCE.md): small figures are noise.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from lifecycle_shared.settings import KafkaSettings


def groups_of(kafka: KafkaSettings) -> dict[str, list[str]]:
    """The consumer groups of the pipeline (names without the topic prefix) and the topics each reads."""
    topics = kafka.topics
    return {"stage-engine": [topics.touchpoints],
            "messaging": [topics.stage_transitions, topics.touchpoints, topics.loyalty_events],
            "loyalty": [topics.touchpoints, topics.stage_transitions]}


class GroupLag:
    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._groups = groups_of(kafka)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=10_000)
        self._probe = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=None,
                                       enable_auto_commit=False, request_timeout_ms=10_000)

    async def start(self) -> None:
        await self._admin.start()
        await self._probe.start()

    async def stop(self) -> None:
        await self._probe.stop()
        await self._admin.close()

    async def measure(self) -> dict[str, dict[str, int]]:
        """{group: {topic (without the prefix): records behind}}."""
        await self._probe._client.force_metadata_update()  # noqa: SLF001 - topics created since start
        out: dict[str, dict[str, int]] = {}
        for group, topics in self._groups.items():
            out[group] = {}
            for topic in topics:
                partitions = [TopicPartition(topic, p) for p in sorted(self._probe.partitions_for_topic(topic) or ())]
                if not partitions:
                    continue
                committed = await self._admin.list_consumer_group_offsets(self._kafka.topic_prefix + group,
                                                                          partitions=partitions)
                ends = await self._probe.end_offsets(partitions)
                starts = await self._probe.beginning_offsets(partitions)
                behind = 0
                for tp in partitions:
                    done = committed.get(tp)
                    position = done.offset if done is not None and done.offset >= 0 else starts[tp]
                    behind += max(0, ends[tp] - position)
                out[group][topic.removeprefix(self._kafka.topic_prefix)] = behind
        return out


def totals(measured: dict[str, dict[str, int]]) -> dict[str, int]:
    return {group: sum(per_topic.values()) for group, per_topic in measured.items()}
