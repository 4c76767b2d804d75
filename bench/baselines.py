"""Raw baselines on the same broker and PostgreSQL as the product figures.

producer: aiokafka, 400-byte JSON values keyed by customer, acks=all, linger 5 ms, 64 KB batches,
          `send()` every record then await all the futures; a fresh 6-partition topic per run.
hop:      aiokafka, one record at a time at a steady rate (open loop), acks=all, no linger, into a fresh
          6-partition topic, read by an aiokafka consumer of its own group (the services' fetch_max_wait_ms, else
          library defaults): produce -> consumed, p50/p99 - the broker's own hop, which every POST -> effect of
          the pipeline crosses at least once.
upsert:   asyncpg, one connection, 1,000 rows a transaction, one
          `INSERT ... SELECT * FROM unnest(...) ON CONFLICT (id) DO UPDATE` statement each,
          into a scratch table of a scratch database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from lifecycle_devstack.databases import create_databases, plain_dsn
from lifecycle_shared.settings import KafkaSettings

UPSERT = """
INSERT INTO bench_upsert (id, customer, touchpoints, revenue, stage, seen_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::float8[], $5::text[], $6::timestamptz[])
ON CONFLICT (id) DO UPDATE SET touchpoints = bench_upsert.touchpoints + EXCLUDED.touchpoints,
    revenue = bench_upsert.revenue + EXCLUDED.revenue, stage = EXCLUDED.stage, seen_at = EXCLUDED.seen_at
"""
TABLE = """
CREATE TABLE IF NOT EXISTS bench_upsert (id text PRIMARY KEY, customer text NOT NULL,
    touchpoints int NOT NULL, revenue float8 NOT NULL, stage text, seen_at timestamptz NOT NULL)
"""
STAGES = ("awareness", "consideration", "purchase", "retention", "loyalty")

Phase = Callable[[str], None]  # called with "start" / "end" around the timed part (CPU snapshots)


async def producer_run(kafka: KafkaSettings, topic: str, pairs: list[tuple[bytes, bytes]], count: int,
                       *, phase: Phase, warmup: int = 2000, partitioner: Callable[..., int] | None = None) -> dict:
    """`partitioner`: aiokafka's default (murmur2 per record) unless given."""
    await _create_topic(kafka, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=5,
                                max_batch_size=64 * 1024, enable_idempotence=kafka.enable_idempotence,
                                request_timeout_ms=30_000,
                                **({"partitioner": partitioner} if partitioner else {}))
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, pairs[i % len(pairs)][1], key=pairs[i % len(pairs)][0])
                               for i in range(warmup)])
        phase("start")
        started = time.perf_counter()
        futures = []
        send = producer.send
        for i in range(count):
            key, value = pairs[i % len(pairs)]
            futures.append(await send(topic, value, key=key))
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
        phase("end")
    finally:
        await producer.stop()
    return {"messages": count, "seconds": round(elapsed, 4), "rate": round(count / elapsed, 1), "topic": topic}


async def hop_run(kafka: KafkaSettings, topic: str, *, rate: float, duration_s: float, timeout_s: float = 30.0) -> dict:
    """The raw Kafka hop's latency at `rate` records/s: each record carries its scheduled send time."""
    await _create_topic(kafka, topic)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers, group_id=f"{topic}.hop",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_wait_ms=kafka.fetch_max_wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                                enable_idempotence=kafka.enable_idempotence)
    await consumer.start()
    await producer.start()
    delays: list[float] = []
    count = max(1, int(rate * duration_s))

    async def consume() -> None:
        while len(delays) < count:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                delays.extend((now - float(record.value)) * 1000 for record in records)

    try:
        while not consumer.assignment():  # joined: the first record is not timed against the group's join
            await consumer.getmany(timeout_ms=100)
        reader = asyncio.create_task(consume())
        t0 = time.perf_counter() + 0.05
        sends = []
        for i in range(count):
            due = t0 + i / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            sends.append(await producer.send(topic, str(due).encode(), key=f"k{i % 997}".encode()))
        await asyncio.gather(*sends)
        try:
            await asyncio.wait_for(reader, timeout_s)
        except TimeoutError:
            pass
    finally:
        await producer.stop()
        await consumer.stop()
    delays.sort()
    pick = (lambda q: round(delays[min(len(delays) - 1, int(q * len(delays)))], 1)) if delays else (lambda q: None)
    return {"records": count, "received": len(delays), "rate": rate, "p50": pick(0.5), "p99": pick(0.99),
            "max": round(delays[-1], 1) if delays else None, "topic": topic}


async def _create_topic(kafka: KafkaSettings, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 6, 1)])
    finally:
        await admin.close()


def _upsert_batches(keys: int, batch: int) -> list[tuple]:
    """keys/batch pre-built argument tuples; batch b covers ids b*batch .. b*batch+batch-1 (distinct)."""
    now = datetime.now(UTC)
    batches = []
    for b in range(keys // batch):
        ids = [f"cust-{b * batch + j:06d}" for j in range(batch)]
        batches.append((ids, ids, [1] * batch, [round(j * 0.37 % 100, 2) for j in range(batch)],
                        [STAGES[j % 5] for j in range(batch)], [now] * batch))
    return batches


async def upsert_prepare(postgres_url: str, database: str, keys: int, batch: int) -> list[tuple]:
    """Create the scratch database and table and insert every key once (so timed runs update)."""
    await create_databases(postgres_url, [database])
    conn = await asyncpg.connect(plain_dsn(postgres_url) + "/" + database)
    try:
        await conn.execute(TABLE)
        batches = _upsert_batches(keys, batch)
        for args in batches:
            async with conn.transaction():
                await conn.execute(UPSERT, *args)
        await conn.execute("VACUUM ANALYZE bench_upsert")
        return batches
    finally:
        await conn.close()


async def upsert_run(postgres_url: str, database: str, batches: list[tuple], rows: int, *, phase: Phase) -> dict:
    conn = await asyncpg.connect(plain_dsn(postgres_url) + "/" + database)
    try:
        statement = await conn.prepare(UPSERT)
        per_batch = len(batches[0][0])
        transactions = rows // per_batch
        phase("start")
        started = time.perf_counter()
        for t in range(transactions):
            async with conn.transaction():
                await statement.fetch(*batches[t % len(batches)])
        elapsed = time.perf_counter() - started
        phase("end")
    finally:
        await conn.close()
    done = transactions * per_batch
    return {"rows": done, "transactions": transactions, "seconds": round(elapsed, 4),
            "rate": round(done / elapsed, 1)}
