"""The runner's polls and offset commits, overlapped with its batches (issue 20: reaction time).

aiokafka fetches a partition again only once its buffered records are taken. Polling only between
batches (poll -> apply -> commit -> poll), a record arriving while a batch applies waited for that
batch, its offset commit, a fresh fetch round trip and the next batch: at a low rate, a reaction took
a few cycles instead of one. So the next poll runs while a batch applies (`PollAhead`), and a batch's
offsets are committed while the next one applies, one commit at a time, in order (`OffsetCommits`).

Records a poll took that were not applied - the loop stopped, drained or failed - are seeked back
(`rewind`): this consumer reads them again, or once it has left the group the partition's next owner
does (their offsets were never committed). Nothing taken is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from lifecycle_shared import metrics
from lifecycle_shared.errors import describe_error

log = logging.getLogger(__name__)

# How long a poll waits for records when none are buffered (it returns at the first ones to arrive).
POLL_TIMEOUT_MS = 500
COMMIT_TIMEOUT_S = 10.0
# How long a stopped poll may take to end.
POLL_STOP_S = 5.0
T = TypeVar("T")

Polled = dict[TopicPartition, list[ConsumerRecord]]


def flat(polled: Polled) -> list[ConsumerRecord]:
    return [record for batch in polled.values() for record in batch]


async def within(work: asyncio.Future[T], timeout_s: float) -> bool:
    """Whether `work` ended within `timeout_s`; if not, it is cancelled and left to end on its own. Unlike
    `asyncio.wait_for`, this never waits for a cancelled aiokafka call to acknowledge its cancellation (some
    retry internally and never do): a stop is always bounded."""
    done, _ = await asyncio.wait([work], timeout=timeout_s)
    if not done:
        work.cancel()
    return bool(done)


def max_poll_records(consumer: AIOKafkaConsumer) -> int:
    """The consumer's `max_poll_records` (aiokafka keeps it only as a private attribute)."""
    return int(consumer._max_poll_records)


def rewind(consumer: AIOKafkaConsumer, records: Iterable[ConsumerRecord]) -> None:
    """Each partition still assigned is seeked back to its first record in `records`."""
    first: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        first[tp] = min(first.get(tp, record.offset), record.offset)
    assigned = consumer.assignment()
    for tp, offset in first.items():
        if tp in assigned:
            consumer.seek(tp, offset)


class PollAhead:
    """At most one poll made ahead, running while the batch in hand applies (`start`)."""

    def __init__(self, consumer: AIOKafkaConsumer, *, max_records: int) -> None:
        self._consumer = consumer
        self._max_records = max_records
        self._ahead: asyncio.Task[Polled] | None = None

    def start(self) -> None:
        if self._ahead is None:
            self._ahead = asyncio.ensure_future(self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS))

    async def next_batch(self) -> list[ConsumerRecord]:
        """What the poll made ahead returned (or a poll made now), plus everything fetched since, up to
        `max_records` in all; empty when nothing came within the poll's timeout."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return flat(await self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS))
        records: list[ConsumerRecord] = []
        try:
            records = flat(await ahead)
            if records and len(records) < self._max_records:
                records += flat(await self._consumer.getmany(timeout_ms=0,
                                                             max_records=self._max_records - len(records)))
        except BaseException:  # taken, not applied: read again, never skipped
            rewind(self._consumer, records or await _taken(ahead))
            raise
        return records

    async def give_back(self, records: list[ConsumerRecord] | None = None) -> None:
        """The poll made ahead is stopped; what it took, and `records` (taken, not applied), are seeked
        back."""
        ahead, self._ahead = self._ahead, None
        taken = await _taken(ahead) if ahead is not None else []
        rewind(self._consumer, (records or []) + taken)


async def _taken(poll: asyncio.Task[Polled]) -> list[ConsumerRecord]:
    """The records a poll returned; none if it is stopped while still waiting (a waiting poll has
    taken nothing: aiokafka hands buffered records over without a pause in between)."""
    if not poll.done():
        poll.cancel()
        await within(poll, POLL_STOP_S)
    if not poll.done() or poll.cancelled() or poll.exception() is not None:
        return []
    return flat(poll.result())


class OffsetCommits:
    """A batch's offsets, committed while the next batch applies; one commit at a time, in order."""

    def __init__(self, consumer: AIOKafkaConsumer, name: str, on_committed: Callable[[], None]) -> None:
        self._consumer = consumer
        self._name = name
        self._on_committed = on_committed
        self._running: asyncio.Task[None] | None = None

    async def start(self, records: list[ConsumerRecord]) -> None:
        """Waits for the previous batch's commit, then starts this one's."""
        if self._running is not None:
            await self._running
        self._running = asyncio.create_task(self._commit_timed(records))

    async def finish(self) -> None:
        """The last commit started has ended (each is bounded by COMMIT_TIMEOUT_S)."""
        running, self._running = self._running, None
        if running is None:
            return
        if not await within(running, COMMIT_TIMEOUT_S + 1):
            log.error("offset commit did not end; left behind", extra={"consumer": self._name})
            return
        error = None if running.cancelled() else running.exception()
        if error is not None:
            log.error("offset commit crashed", extra={"consumer": self._name, "error": describe_error(error)})

    async def _commit_timed(self, records: list[ConsumerRecord]) -> None:
        started = time.perf_counter()
        await self._commit(records)
        metrics.BATCH_SECONDS.labels(self._name, "commit").observe(time.perf_counter() - started)
        self._on_committed()

    async def _commit(self, records: list[ConsumerRecord]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        for tp, next_offset in offsets.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(self._name, tp.topic, str(tp.partition)).set(
                    max(0, highwater - next_offset))
        try:
            # Bounded: aiokafka retries a commit to a vanished topic forever.
            commit = asyncio.ensure_future(self._consumer.commit(offsets))
            if not await within(commit, COMMIT_TIMEOUT_S):
                raise TimeoutError("offset commit timed out")
            commit.result()
        except (CommitFailedError, KafkaError, TimeoutError) as error:
            # A rebalance took the partition (or the broker lost it): whoever reads it next re-reads,
            # and the inbox drops what was applied.
            log.warning("offset commit failed", extra={"consumer": self._name, "error": describe_error(error)})
