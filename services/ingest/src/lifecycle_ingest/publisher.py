"""Publishes accepted touchpoints as CloudEvents and waits for the broker's ack (acks=all).

Concurrent requests share the producer's buffer: each `send()` returns a future and the
request awaits its own futures, so small requests still travel in big Kafka batches.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from lifecycle_shared.events import CloudEvent, TouchpointData, touchpoint_event_type

from lifecycle_ingest.domain.touchpoints import customer_key


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time; the client should retry the whole request."""


class Overloaded(Exception):
    """Too many events in flight; the client should retry later."""


def to_cloud_event(touchpoint: TouchpointData, *, source: str) -> CloudEvent:
    # Built from an already validated touchpoint: construct without validating twice.
    return CloudEvent.model_construct(
        id=touchpoint.messageId,
        source=f"/sources/{source}",
        type=touchpoint_event_type(touchpoint),
        time=touchpoint.timestamp,
        subject=customer_key(touchpoint),
        data=touchpoint.model_dump(mode="json", exclude_none=True),
    )


class TouchpointPublisher:
    def __init__(self, *, producer: AIOKafkaProducer, topic: str, timeout_s: float,
                 max_inflight: int) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s
        self._max_inflight = max_inflight
        self._inflight = 0

    async def publish(self, touchpoints: list[TouchpointData], *, source: str) -> None:
        count = len(touchpoints)
        if self._inflight + count > self._max_inflight:
            raise Overloaded
        self._inflight += count
        try:
            await asyncio.wait_for(self._send_all(touchpoints, source), self._timeout_s)
        except (KafkaError, TimeoutError) as error:
            raise BrokerUnavailable(repr(error)) from error
        finally:
            self._inflight -= count

    async def _send_all(self, touchpoints: list[TouchpointData], source: str) -> None:
        futures = []
        for touchpoint in touchpoints:
            event = to_cloud_event(touchpoint, source=source)
            futures.append(await self._producer.send(
                self._topic, event.to_bytes(), key=event.subject.encode(), headers=event.kafka_headers()))
        await asyncio.gather(*futures)
