"""Producer, consumer and admin clients with the settings this design needs.

aiokafka's defaults are unsafe here (acks=1, auto-commit on, offset reset latest): every
client of the project is built by these functions.
"""

from __future__ import annotations

import aiokafka.admin.client
import aiokafka.client
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.protocol.metadata import MetadataRequest

from lifecycle_shared.kafka.partitioner import keyed_partitioner
from lifecycle_shared.settings import KafkaSettings


class _MetadataRequestCreatingNothing(MetadataRequest):  # type: ignore[misc]  # aiokafka has no type hints
    def __init__(self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None) -> None:
        super().__init__(topics, allow_auto_topic_creation=False)


def never_auto_create_topics() -> None:
    """aiokafka asks the broker to auto-create every topic it requests metadata for, with no option
    to turn that off. A broker that honours it (Tansu always does) then re-creates a vanished topic
    with its own default partition count, before a service can re-create it with the configured
    one. The project creates its topics explicitly, so its clients ask for no auto-creation."""
    aiokafka.client.MetadataRequest = _MetadataRequestCreatingNothing
    aiokafka.admin.client.MetadataRequest = _MetadataRequestCreatingNothing


def make_producer(settings: KafkaSettings, *, linger_ms: int | None = None) -> AIOKafkaProducer:
    never_auto_create_topics()
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        linger_ms=settings.linger_ms if linger_ms is None else linger_ms,
        max_batch_size=64 * 1024,
        request_timeout_ms=10_000,
        partitioner=keyed_partitioner,  # the default's partitions, without hashing each record's key anew
    )


def make_consumer(settings: KafkaSettings, *, group_id: str, topics: list[str]) -> AIOKafkaConsumer:
    never_auto_create_topics()
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.topic_prefix + group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.max_poll_records,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_interval_ms=300_000,
    )
