"""Reading a namespace's topics whole, as the contract and erasure tests scan them."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from lifecycle_shared.testing import topic_partitions


async def read_every_topic(bootstrap: str, prefix: str, *, timeout_s: float = 30) -> dict[str, list]:
    """Every record of every topic in the namespace, from the beginning up to the end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(prefix))
        # `_partitions` waits for each topic's metadata (Apache Kafka's `topics()` does not fill it in).
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(await topic_partitions(consumer, t))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: dict[str, list] = {topic: [] for topic in topics}
        deadline = time.monotonic() + timeout_s
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "could not read the topics to their end"
            for tp, batch in (await consumer.getmany(timeout_ms=300)).items():
                records[tp.topic] += [r for r in batch if r.offset < ends[tp]]
        return records
    finally:
        await consumer.stop()
