"""The runner on a database's bad days, against a PostgreSQL of this module's own put in each state: a
failover (57P03 while a standby is promoted), a deadlock between two real transactions, every connection
slot taken (53300). The record waits and is applied once; nothing goes to the dead-letter topic."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from lifecycle_devstack.databases import create_databases
from lifecycle_devstack.infra import create_topics
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.postgres import EmbeddedPostgres
from lifecycle_devstack.services import BY_NAME, run_module
from lifecycle_shared.db import create_engine
from lifecycle_shared.kafka.clients import make_consumer
from lifecycle_shared.kafka.registry import Route, each
from lifecycle_shared.kafka.runner import ConsumerRunner, RetryPolicy
from lifecycle_shared.settings import KafkaSettings
from lifecycle_shared.testing import make_cloud_event, read_topic
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from tests.support.kafka_records import record

MAX_CONNECTIONS = 12
LOYALTY = BY_NAME["loyalty"]


@pytest.fixture(scope="module")
def own_postgres(infra, tmp_path_factory):
    server = EmbeddedPostgres(tmp_path_factory.mktemp("bad-days") / "postgres", free_port(), durable=False,
                              options=["-c", f"max_connections={MAX_CONNECTIONS}"])
    server.start()
    config = dataclasses.replace(infra.stack_config(), postgres_url=server.server_url)
    try:
        asyncio.run(create_databases(server.server_url, [config.database_prefix + LOYALTY.database]))
        asyncio.run(create_topics(config))
        run_module(LOYALTY, config, "migrate")
        yield server, config
    finally:
        server.stop()


@pytest.fixture
async def parts(own_postgres):
    server, config = own_postgres
    engine = create_engine(config.database_url(LOYALTY))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS bad_days_applied (event_id text NOT NULL)"))
        await conn.execute(text("CREATE TABLE IF NOT EXISTS bad_days_rows (id int PRIMARY KEY, n int NOT NULL)"))
        await conn.execute(text("INSERT INTO bad_days_rows VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING"))
    producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap, acks="all")
    await producer.start()
    yield server, config, engine, producer
    await producer.stop()
    await engine.dispose()


class AnyData(BaseModel):
    model_config = ConfigDict(extra="allow")


async def apply_once(conn, typed):
    """The handler: one row per application, so a count says how often a record was applied."""
    await conn.execute(text("INSERT INTO bad_days_applied (event_id) VALUES (:id)"), {"id": typed.event.id})
    return []


async def times_applied(engine, event_id) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM bad_days_applied WHERE event_id = :id"),
                                   {"id": event_id})).scalar_one()


async def dead_lettered(config, topic, value) -> bool:
    return value in {r.value for r in await read_topic(config.kafka_bootstrap, topic + ".dlq")}


class Running:
    """The real runner (real consumer group, real broker) in a task, as a service runs it."""

    def __init__(self, config, engine, producer, topic) -> None:
        settings = KafkaSettings(bootstrap_servers=config.kafka_bootstrap, topic_prefix=config.topic_prefix,
                                 enable_idempotence=config.kafka_idempotence)
        self.consumer = make_consumer(settings, group_id=f"bad-days-{uuid.uuid4().hex[:8]}", topics=[topic])
        self.committed = asyncio.Event()
        route = Route(AnyData, each(apply_once))
        self.runner = ConsumerRunner(name="bad-days", consumer=self.consumer, producer=producer, engine=engine,
                                     route=lambda _: route, on_committed=self.committed.set,
                                     retry=RetryPolicy(attempts=2, base_delay_s=0.01, outage_base_delay_s=0.2,
                                                       outage_max_delay_s=1.0))
        self.task = asyncio.create_task(self.runner.run())

    async def wait_for_outage(self, failures: int = 2, timeout_s: float = 60) -> None:
        async with asyncio.timeout(timeout_s):
            while self.runner.outage < failures:  # noqa: ASYNC110 - the runner has no event to wait on
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()


async def test_a_record_delivered_during_a_failover_waits_for_the_promotion_and_applies_once(parts, caplog):
    server, config, engine, producer = parts
    topic = config.topic_prefix + "touchpoints.v1"
    await engine.dispose()
    server.pg_ctl("stop", "-m", "fast")
    (server.data_dir / "standby.signal").touch()
    server.options = [*server.options, "-c", "hot_standby=off"]
    server.start(ready=False)  # up, answering every connection with 57P03
    with pytest.raises(asyncpg.CannotConnectNowError):  # the server really is in that state
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres")

    event = make_cloud_event()
    await producer.send_and_wait(topic, event.to_bytes(), key=b"failover")
    running = Running(config, engine, producer, topic)
    try:
        with caplog.at_level(logging.WARNING, logger="lifecycle_shared.kafka.runner"):
            await running.wait_for_outage(3)
            assert not running.runner.healthy  # /readyz: "consumers": false
            await asyncio.sleep(2)
            assert not running.committed.is_set()
            server.pg_ctl("promote", "-w")
            await asyncio.wait_for(running.committed.wait(), 60)
        assert running.runner.healthy
        assert any("57P03" in getattr(r, "error", "") for r in caplog.records)
    finally:
        await running.stop()
        server.options = server.options[:-2]
    assert await times_applied(engine, event.id) == 1
    assert not await dead_lettered(config, topic, event.to_bytes())


async def test_every_connection_slot_taken_waits_until_one_frees_up(parts, caplog):
    server, config, engine, producer = parts
    topic = config.topic_prefix + "touchpoints.v1"
    await engine.dispose()
    hogs = []
    with pytest.raises(asyncpg.TooManyConnectionsError):
        for _ in range(MAX_CONNECTIONS + 1):
            hogs.append(await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres"))
    event = make_cloud_event()
    await producer.send_and_wait(topic, event.to_bytes(), key=b"crowded")
    running = Running(config, engine, producer, topic)
    try:
        with caplog.at_level(logging.WARNING, logger="lifecycle_shared.kafka.runner"):
            await running.wait_for_outage(3)
            assert not running.runner.healthy and not running.committed.is_set()
            for hog in hogs:
                await hog.close()
            await asyncio.wait_for(running.committed.wait(), 60)
        assert any("53300" in getattr(r, "error", "") for r in caplog.records)
    finally:
        for hog in hogs:
            await hog.close()
        await running.stop()
    assert await times_applied(engine, event.id) == 1
    assert not await dead_lettered(config, topic, event.to_bytes())


class Pair(BaseModel):
    first: int
    second: int


# PostgreSQL finds a deadlock by a timer (deadlock_timeout) that never fires under libfaketime, so the
# year-ahead run (scripts/year-ahead.sh) leaves this test out; it reads no date.
@pytest.mark.real_timers
async def test_a_deadlock_between_two_transactions_is_retried_and_both_apply_once(parts, caplog):
    """Two records lock the same two rows in opposite order, each waiting until the other holds its first
    row: PostgreSQL aborts one (40P01). One attempt per record: only a retry outside them can succeed."""
    _, config, engine, producer = parts
    topic = config.topic_prefix + "touchpoints.v1"
    locked = {1: asyncio.Event(), 2: asyncio.Event()}
    calls: list[str] = []

    async def lock_in_order(conn, typed):
        calls.append(typed.event.id)
        await conn.execute(text("UPDATE bad_days_rows SET n = n + 1 WHERE id = :id"), {"id": typed.data.first})
        locked[typed.data.first].set()
        await asyncio.wait_for(locked[typed.data.second].wait(), 10)
        await conn.execute(text("UPDATE bad_days_rows SET n = n + 1 WHERE id = :id"), {"id": typed.data.second})
        return await apply_once(conn, typed)

    async with engine.begin() as conn:
        before = dict((await conn.execute(text("SELECT id, n FROM bad_days_rows"))).all())
    route = Route(Pair, each(lock_in_order))
    runners = [ConsumerRunner(name="bad-days", consumer=None, producer=producer, engine=engine,
                              route=lambda _: route, retry=RetryPolicy(attempts=1, base_delay_s=0.01))
               for _ in range(2)]
    one, other = make_cloud_event(data={"first": 1, "second": 2}), make_cloud_event(data={"first": 2, "second": 1})
    with caplog.at_level(logging.WARNING, logger="lifecycle_shared.kafka.runner"):
        async with asyncio.timeout(60):  # a deadlock PostgreSQL never breaks fails here instead of hanging
            await asyncio.gather(runners[0].process([record(topic, 0, one.to_bytes(), key=b"deadlock")]),
                                 runners[1].process([record(topic, 1, other.to_bytes(), key=b"deadlock")]))
    assert any("40P01" in getattr(r, "error", "") for r in caplog.records)
    assert len(calls) == 3  # one of them ran twice
    for event in (one, other):
        assert await times_applied(engine, event.id) == 1
        assert not await dead_lettered(config, topic, event.to_bytes())
    async with engine.begin() as conn:
        after = dict((await conn.execute(text("SELECT id, n FROM bad_days_rows"))).all())
    assert after == {1: before[1] + 2, 2: before[2] + 2}


async def test_a_lost_race_inside_the_isolated_attempt_does_not_use_up_the_records_attempts(parts):
    _, config, engine, producer = parts
    topic = config.topic_prefix + "touchpoints.v1"
    calls: list[str] = []

    async def serialization_failure_twice(conn, typed):
        calls.append(typed.event.id)
        if len(calls) <= 3:  # the batch, then twice in isolation
            raise asyncpg.SerializationError("could not serialize access due to concurrent update")
        return await apply_once(conn, typed)

    route = Route(AnyData, each(serialization_failure_twice))
    runner = ConsumerRunner(name="bad-days", consumer=None, producer=producer, engine=engine,
                            route=lambda _: route, retry=RetryPolicy(attempts=1, base_delay_s=0.01))
    event = make_cloud_event()
    await runner.process([record(topic, 2, event.to_bytes(), key=b"race")])
    assert len(calls) == 4
    assert await times_applied(engine, event.id) == 1
    assert not await dead_lettered(config, topic, event.to_bytes())
