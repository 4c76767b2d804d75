"""Re-driving dead letters: `python -m lifecycle_shared.dlq redrive --topic <topic>.dlq [--since ISO-8601 |
--ids EVENT_ID,...] [--dry-run]`.

Reads the dead-letter topic from its beginning to its current end, keeps the chosen dead letters and
publishes each once to the topic it came from (`dlq.original.topic`) with the same key, value and headers
(the CloudEvent ones; the `dlq.*` headers the runner added are dropped). Consumers apply an event once
(the runner's inbox), so re-driving a record that was applied since, or re-driving twice, is harmless.
The broker comes from LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS (or --bootstrap-servers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from lifecycle_shared.kafka.clients import make_producer
from lifecycle_shared.settings import KafkaSettings

DLQ_HEADER_PREFIX = "dlq."


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str | None:
        return next((value.decode(errors="replace") for key, value in self.headers if key == name), None)

    @property
    def original_topic(self) -> str | None:
        return self.header("dlq.original.topic")

    @property
    def event_id(self) -> str | None:
        try:
            event = json.loads(self.value or b"")
        except ValueError:
            return None
        return event.get("id") if isinstance(event, dict) and isinstance(event.get("id"), str) else None

    @property
    def republished_headers(self) -> list[tuple[str, bytes]]:
        return [(key, value) for key, value in self.headers if not key.startswith(DLQ_HEADER_PREFIX)]


def chosen(letters: Sequence[DeadLetter], *, since: datetime | None = None,
           ids: Collection[str] | None = None) -> list[DeadLetter]:
    """The dead letters to re-drive: dead-lettered at or after `since`, and/or of these event ids."""
    return [letter for letter in letters if letter.original_topic
            and (since is None or letter.timestamp_ms >= since.timestamp() * 1000)
            and (ids is None or letter.event_id in ids)]


async def read_dead_letters(settings: KafkaSettings, topic: str) -> list[DeadLetter]:
    """Every record of `topic` up to its end when asked (no consumer group: nothing is committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        for _ in range(50):
            if partitions:
                break
            await consumer.client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            await asyncio.sleep(0.1)
        if not partitions:
            raise SystemExit(f"no such topic: {topic}")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        letters: list[DeadLetter] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                letters += [DeadLetter(tp.partition, r.offset, r.timestamp, r.key, r.value, list(r.headers or ()))
                            for r in records if r.offset < ends[tp]]
        return letters
    finally:
        await consumer.stop()


async def redrive(settings: KafkaSettings, topic: str, *, since: datetime | None = None,
                  ids: Collection[str] | None = None, dry_run: bool = False) -> list[DeadLetter]:
    """Publish the chosen dead letters of `topic` once to their original topics; returns them."""
    letters = chosen(await read_dead_letters(settings, topic), since=since, ids=ids)
    if dry_run or not letters:
        return letters
    producer = make_producer(settings)
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(str(letter.original_topic), letter.value, key=letter.key,
                                         headers=letter.republished_headers)
    finally:
        await producer.stop()
    return letters


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lifecycle_shared.dlq")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("redrive", help="republish dead letters to the topics they came from")
    command.add_argument("--topic", required=True, help="the dead-letter topic, e.g. touchpoints.v1.dlq")
    which = command.add_mutually_exclusive_group()
    which.add_argument("--since", type=datetime.fromisoformat, help="dead-lettered at or after (ISO 8601)")
    which.add_argument("--ids", type=lambda value: set(value.split(",")), help="event ids, comma-separated")
    command.add_argument("--dry-run", action="store_true", help="list what would be re-driven")
    command.add_argument("--bootstrap-servers", help="default: LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS")
    ns = parser.parse_args(argv)
    overrides: dict[str, Any] = {"bootstrap_servers": ns.bootstrap_servers} if ns.bootstrap_servers else {}
    settings = KafkaSettings(**overrides)
    letters = asyncio.run(redrive(settings, ns.topic, since=ns.since, ids=ns.ids, dry_run=ns.dry_run))
    for letter in letters:  # positions and ids only: no personal data
        print(f"{'would re-drive' if ns.dry_run else 're-driven'} {ns.topic}[{letter.partition}]@{letter.offset}"
              f" event {letter.event_id} -> {letter.original_topic}"
              f"[{letter.header('dlq.original.partition')}]@{letter.header('dlq.original.offset')}"
              f" ({letter.header('dlq.error')})")
    print(f"{len(letters)} dead letter(s) {'to re-drive' if ns.dry_run else 're-driven'}", file=sys.stderr)


if __name__ == "__main__":
    main()
