"""Reading a namespace's topics whole, as the contract and erasure tests scan them; and opening sealed records
(docs/erasure.md) the way a Lifecycle service does: each one's key from ingest's key API."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from lifecycle_shared.events import CloudEvent
from lifecycle_shared.sealing import is_sealed, keys_token, open_event
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


async def opened(records: Iterable[Any], pipeline: Any) -> list[tuple[Any, CloudEvent | None]]:
    """Each record that is a CloudEvent with its event as a consumer of the pipeline reads it: clear ones as they
    are, sealed ones opened with their keys (None when the key is gone: erased). The pipeline's ingest serves the
    keys. Records that are no CloudEvent (other tests' poison) are left out."""
    events = [(record, event) for record in records if (event := _event(record.value)) is not None]
    keys = await lookup_keys({event.subject for _, event in events if is_sealed(event)},
                             keys_url=pipeline.url("ingest"), pepper=pipeline.config.erasure_pepper)
    return [(record, open_event(event, keys[event.subject]) if event.subject in keys else None)
            if is_sealed(event) else (record, event) for record, event in events]


def _event(value: bytes | None) -> CloudEvent | None:
    try:
        return CloudEvent.model_validate_json(value or b"")
    except ValueError:
        return None


async def lookup_keys(key_ids: Iterable[str], *, keys_url: str, pepper: str) -> dict[str, bytes]:
    """The keys of these key ids that still exist, from ingest's key API."""
    ids = sorted(key_ids)
    if not ids:
        return {}
    async with httpx.AsyncClient(base_url=keys_url, timeout=30,
                                 headers={"authorization": f"Bearer {keys_token(pepper.encode())}"}) as client:
        found: dict[str, bytes] = {}
        for start in range(0, len(ids), 1000):
            answer = await client.post("/internal/keys/lookup", json={"key_ids": ids[start:start + 1000]})
            assert answer.status_code == 200, answer.text
            found |= {key_id: base64.b64decode(key) for key_id, key in answer.json()["keys"].items()}
        return found
