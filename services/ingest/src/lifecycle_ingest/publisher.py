"""Publishes accepted touchpoints as CloudEvents and waits for the broker's ack (acks=all).

Concurrent requests share the producer's buffer: each `send()` returns a future and the
request awaits its own futures, so small requests still travel in big Kafka batches.

Every record is built (and its size checked, by `api.accept`) before the first is handed to the
producer, so nothing about an event can fail after part of a request went out. Once records are
handed over, a timeout or broker error means *unknown*: some may arrive. `DeliveryUnknown` says
so, and the caller answers 503 with the messageIds to retry with - a retry with the same ids is
recognised downstream and applied once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from lifecycle_shared.errors import describe_error
from lifecycle_shared.events import CloudEvent, TouchpointData, kafka_headers, touchpoint_type

from lifecycle_ingest.domain.touchpoints import TRANSPORT_ORDER, customer_key, event_id, to_json


class DeliveryUnknown(Exception):
    """The broker did not confirm every record in time; some may have been accepted."""


class Overloaded(Exception):
    """Too many events in flight: nothing was handed to the producer."""


class BrokerNotReady(Exception):
    """The topic watch finds the broker unreachable or its topics missing: nothing was handed over."""


class KeysNotReady(Exception):
    """The customers' data keys could not be had (the database is away): nothing was handed over."""


class Record(NamedTuple):
    """One touchpoint as it goes to Kafka (a tuple: built per event on the hot path)."""

    message_id: str
    digest: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    # The parts sealing takes (subject_keys.LocalKeyring.seal): the customer key, the event id, and the envelope
    # without `subject` and `data` as a JSON object - `value` is `head` with them appended (`plain_of`).
    subject: str
    event_id: str
    head: bytes


def plain_of(record: Record) -> bytes:
    """What sealing encrypts: `{"subject": ..., "data": ...}`, the JSON `to_record` appended to `head`."""
    return b"{" + record.value[len(record.head):]


def to_record(data: dict[str, Any], *, source: str, key_kind: str = "server") -> Record:
    """A touchpoint's data (`touchpoint_data`) as a structured-mode CloudEvent. The data is serialised
    once: its content (what the digest covers, as `content_digest`) and then the transport fields
    appended to it (`tests/unit/test_touchpoints` holds the result valid for `CloudEvent` and equal to
    what validation into `TouchpointData` gives)."""
    event_type = touchpoint_type(data["type"], data.get("event"))
    subject = customer_key(data)
    # Split by popping the few transport fields from a copy: two filtering passes over every field cost more.
    described = dict(data)
    transport = to_json({name: described.pop(name) for name in TRANSPORT_ORDER if name in described})
    content = to_json(described)
    digest = hashlib.sha256(content).hexdigest()
    the_id = event_id(source=source, message_id=data["messageId"], key_kind=key_kind)
    head = to_json({"specversion": "1.0", "id": the_id, "source": f"/sources/{source}", "type": event_type,
                    "time": data["timestamp"], "datacontenttype": "application/json", "digest": digest})
    data_json = b"".join((content[:-1], b",", transport[1:]))
    value = b"".join((head[:-1], b',"subject":', to_json(subject), b',"data":', data_json, b"}"))
    return Record(message_id=data["messageId"], digest=digest, key=subject.encode(), value=value,
                  headers=kafka_headers(event_type), subject=subject, event_id=the_id, head=head)


def to_cloud_event(touchpoint: TouchpointData | dict[str, Any], *, source: str) -> CloudEvent:
    """The CloudEvent a touchpoint is published as (for tests and tools; `api.accept` uses `to_record`)."""
    data = touchpoint.model_dump(exclude_none=True) if isinstance(touchpoint, TouchpointData) else touchpoint
    return CloudEvent.model_validate_json(to_record(data, source=source).value)


class TouchpointPublisher:
    def __init__(self, *, producer: AIOKafkaProducer, topic: str, timeout_s: float,
                 max_inflight: int, topics_ready: Callable[[], bool] = lambda: True,
                 seal: Callable[[list[Record]], Awaitable[list[Record]]] | None = None) -> None:
        """`seal`: records to what is published (subject_keys.LocalKeyring.seal); None: published in clear."""
        self._producer = producer
        self._seal = seal
        self._topics_ready = topics_ready
        self._topic = topic
        self._timeout_s = timeout_s
        self._max_inflight = max_inflight
        self._inflight = 0

    async def publish(self, records: list[Record], *, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Send and wait for the acks; `headers` (trace context) are added to every record."""
        count = len(records)
        if not self._topics_ready():
            raise BrokerNotReady
        if self._inflight + count > self._max_inflight:
            raise Overloaded
        if self._seal is not None:
            try:
                records = await self._seal(records)
            except Exception as error:  # noqa: BLE001 - the key store is away: nothing was sent
                raise KeysNotReady(describe_error(error)) from error
        self._inflight += count
        try:
            # asyncio.timeout, not wait_for: no extra task per request (measured on the hot path).
            async with asyncio.timeout(self._timeout_s):
                await self._send_all(records, list(headers))
        except (KafkaError, TimeoutError) as error:
            raise DeliveryUnknown(type(error).__name__) from error
        finally:
            self._inflight -= count

    async def _send_all(self, records: list[Record], extra: list[tuple[str, bytes]]) -> None:
        send, topic = self._producer.send, self._topic
        futures = [await send(topic, r.value, key=r.key, headers=r.headers + extra if extra else r.headers)
                   for r in records]
        # Awaited in turn, not gathered: a record batch's futures are resolved together, so this wakes once per
        # batch, where gather() ran a callback per record. On a failure the others' outcomes are collected as
        # they come (nobody else reads them; asyncio would log each as never retrieved).
        try:
            for future in futures:
                await future
        except BaseException:
            for future in futures:
                future.add_done_callback(_collect)
            raise


def _collect(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
