"""Test helpers shared by the services' tests: builders with overrides and polling.

`make_touchpoint(event="Order Completed", userId="u1")` builds a Segment-shaped body as a
storefront would send it; `make_cloud_event(...)` the envelope a consumer receives.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from lifecycle_shared.events import CloudEvent

T = TypeVar("T")


def make_touchpoint(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": f"anon-{uuid.uuid4().hex[:12]}",
        "messageId": str(uuid.uuid4()),
        "properties": {},
        "timestamp": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def make_cloud_event(**overrides: Any) -> CloudEvent:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "source": "/tests",
        "type": "touchpoint.product_viewed",
        "time": datetime.now(UTC),
        "subject": f"customer-{uuid.uuid4().hex[:8]}",
        "data": {},
    }
    fields.update(overrides)
    return CloudEvent(**fields)


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout_s: float = 30,
                     interval_s: float = 0.2, what: str = "condition") -> T:
    """Poll until `probe` returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value: {last!r}")


async def read_topic(bootstrap: str, topic: str, *, until: Callable[[Any], bool] | None = None,
                     timeout_s: float = 20) -> list[Any]:
    """Every record of `topic` from the beginning (no consumer group), until one matches `until`
    or no more arrive; with `until`, fails if none matched within `timeout_s`."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = [r for rs in (await consumer.getmany(timeout_ms=300)).values() for r in rs]
            records += batch
            if until is not None and any(until(r) for r in batch):
                return records
            if until is None and not batch:
                return records
        if until is not None:
            raise AssertionError(f"no matching record in {topic} after {timeout_s}s")
        return records
    finally:
        await consumer.stop()


async def topic_partitions(consumer: Any, topic: str) -> set[int]:
    """The partitions of `topic`, waiting for its metadata (a fresh consumer may not have it yet)."""
    for _ in range(50):
        found: set[int] | None = consumer.partitions_for_topic(topic)
        if found:
            return found
        await consumer._client.force_metadata_update()  # noqa: SLF001 - no public equivalent
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} has no partitions")
