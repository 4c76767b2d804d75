"""The runner's next poll runs while a batch applies (`lifecycle_shared.kafka.polling`). Records that poll
took are neither lost nor applied twice when the batch in hand ends some other way than applied: a drain
(the partition's next owner applies them), a stop (the runner, started again on the same consumer as
the service's supervisor does, reads them again) or an outage (re-read once it is over). The batch in
hand is one record of partition 0 and the poll ahead takes partition 1's: giving back only the batch in
hand would skip them. A real broker (a two-partition topic of each test's own), real PostgreSQL and the
real runner."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from lifecycle_shared.kafka.clients import make_consumer
from lifecycle_shared.kafka.registry import Route, each
from lifecycle_shared.kafka.runner import ConsumerRunner, RetryPolicy
from lifecycle_shared.settings import KafkaSettings
from lifecycle_shared.testing import make_cloud_event
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

IN_HAND, AHEAD = 1, 4  # records sent to partition 0 before the runner starts, to partition 1 after


class AnyData(BaseModel):
    model_config = ConfigDict(extra="allow")


class BlockingHandler:
    """Holds the first record it sees until `release`; then, once, fails as if the broker were away
    (`outage`); records each application in the batch's transaction (a row per application)."""

    def __init__(self, table: str, *, outage: bool) -> None:
        self.table, self.outage = table, outage
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self, conn, typed):
        if not self.release.is_set():
            self.entered.set()
            await self.release.wait()
        if self.outage:
            self.outage = False
            raise KafkaConnectionError("the broker is away")
        await conn.execute(text(f"INSERT INTO {self.table} (event_id) VALUES (:id)"), {"id": typed.event.id})
        return []


@pytest.fixture
async def two_partitions(namespace) -> str:
    name = f"{namespace.topic_prefix}poll-ahead-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=namespace.kafka_bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 2, 1)])
    finally:
        await admin.close()
    return name


@pytest.fixture
async def applied_table(runner_parts) -> str:
    engine, _ = runner_parts
    table = f"poll_ahead_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {table} (event_id text NOT NULL)"))
    yield table
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {table}"))


async def _send(producer, topic: str, partition: int, count: int) -> list[str]:
    events = [make_cloud_event() for _ in range(count)]
    for event in events:
        await producer.send_and_wait(topic, event.to_bytes(), key=b"a-customer", partition=partition)
    return [event.id for event in events]


async def _applications(engine, table: str) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT event_id, count(*) FROM {table} GROUP BY event_id"))
        return dict(rows.all())


async def _until(condition, timeout_s: float = 60) -> None:
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110 - a broker position or rows, no event to wait on
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("ending", ["drain", "stop", "outage"])
async def test_records_the_poll_ahead_took_apply_exactly_once_whatever_ends_the_batch_in_hand(
        runner_parts, namespace, two_partitions, applied_table, ending):
    engine, producer = runner_parts
    topic = two_partitions
    in_hand, ahead = TopicPartition(topic, 0), TopicPartition(topic, 1)
    settings = KafkaSettings(bootstrap_servers=namespace.kafka_bootstrap, topic_prefix=namespace.topic_prefix,
                             enable_idempotence=False)
    group = f"poll-ahead-{uuid.uuid4().hex[:6]}"
    handler = BlockingHandler(applied_table, outage=ending == "outage")

    def runner_on(consumer) -> ConsumerRunner:
        return ConsumerRunner(name=group, consumer=consumer, producer=producer, engine=engine,
                              route=lambda _: Route(AnyData, each(handler)),
                              retry=RetryPolicy(outage_base_delay_s=0.05, outage_max_delay_s=0.2))

    ids = await _send(producer, topic, 0, IN_HAND)
    consumer = make_consumer(settings, group_id=group, topics=[topic])
    runner = runner_on(consumer)
    task = asyncio.create_task(runner.run())
    successor = None
    try:
        await asyncio.wait_for(handler.entered.wait(), 60)  # the batch in hand: partition 0's record, held
        ids += await _send(producer, topic, 1, AHEAD)

        async def polled_ahead() -> bool:  # taken from the fetcher, not applied
            return await consumer.position(ahead) > 0

        await _until(polled_ahead)
        assert await _applications(engine, applied_table) == {}

        if ending == "drain":
            runner.drain()
            handler.release.set()
            await asyncio.wait_for(task, 60)  # returns by itself: the batch in hand applied and committed
            assert await _applications(engine, applied_table) == {ids[0]: 1}
            assert await consumer.committed(in_hand) == IN_HAND
            assert not await consumer.committed(ahead)  # nothing polled ahead is committed
            await consumer.stop()
            successor = make_consumer(settings, group_id=group, topics=[topic])  # the partition's next owner
            task = asyncio.create_task(runner_on(successor).run())
        elif ending == "stop":
            task.cancel()  # mid-batch: its transaction rolls back
            await asyncio.gather(task, return_exceptions=True)
            handler.release.set()
            task = asyncio.create_task(runner.run())  # as the supervisor restarts it: the same consumer
        else:
            handler.release.set()  # the batch fails as if the broker were away, then is read again

        async def all_applied() -> bool:
            return set(await _applications(engine, applied_table)) == set(ids)

        await _until(all_applied)
        assert await _applications(engine, applied_table) == dict.fromkeys(ids, 1)
    finally:
        handler.release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for each_consumer in (consumer, successor):
            if each_consumer is not None:
                await each_consumer.stop()
