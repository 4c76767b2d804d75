"""Producer, consumer and admin clients with the settings this design needs.

aiokafka's defaults are unsafe here (acks=1, auto-commit on, offset reset latest): every
client of the project is built by these functions.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from lifecycle_shared.settings import KafkaSettings

log = logging.getLogger(__name__)


def make_producer(settings: KafkaSettings, *, linger_ms: int | None = None) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        linger_ms=settings.linger_ms if linger_ms is None else linger_ms,
        max_batch_size=64 * 1024,
        request_timeout_ms=10_000,
    )


def make_consumer(settings: KafkaSettings, *, group_id: str, topics: list[str]) -> AIOKafkaConsumer:
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


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the project's topics and their DLQs if missing (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.partitions, settings.replication_factor)
            for name in settings.topics.all_with_dlq()
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()
