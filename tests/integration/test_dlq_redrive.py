"""Re-driving dead letters (`python -m lifecycle_shared.dlq redrive`) against the real broker: a record
dead-lettered for a cause since fixed goes back to its topic unchanged and is applied once, however
often it is re-driven."""

from __future__ import annotations

import asyncio
import uuid

from lifecycle_shared.db import inbox
from lifecycle_shared.dlq import main, redrive
from lifecycle_shared.kafka.registry import Route, each
from lifecycle_shared.kafka.runner import ConsumerRunner, RetryPolicy
from lifecycle_shared.settings import KafkaSettings
from lifecycle_shared.testing import make_cloud_event, read_topic
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from tests.support.kafka_records import record


class AnyData(BaseModel):
    model_config = ConfigDict(extra="allow")


async def test_a_dead_letter_whose_cause_was_fixed_is_redriven_and_applied_once(runner_parts, namespace, capsys):
    engine, producer = runner_parts
    topic = namespace.topic_prefix + "touchpoints.v1"
    settings = KafkaSettings(bootstrap_servers=namespace.kafka_bootstrap, topic_prefix=namespace.topic_prefix,
                             enable_idempotence=namespace.kafka_idempotence)
    fixed, applied = False, []

    async def handle(conn, typed):
        if not fixed:
            raise RuntimeError("a bug, since fixed")
        applied.append(typed.event.id)
        return []

    route = Route(AnyData, each(handle))
    runner = ConsumerRunner(name="redrive-test", consumer=None, producer=producer, engine=engine,
                            route=lambda _: route, retry=RetryPolicy(attempts=1, base_delay_s=0.01))
    event, bystander = make_cloud_event(), make_cloud_event()
    key = f"k-{uuid.uuid4().hex[:8]}".encode()
    await runner.process([record(topic, 7, event.to_bytes(), key=key), record(topic, 8, bystander.to_bytes())])
    await read_topic(namespace.kafka_bootstrap, topic + ".dlq", until=lambda r: r.value == bystander.to_bytes())

    await asyncio.to_thread(main, ["redrive", "--topic", topic + ".dlq", "--ids", event.id, "--dry-run",
                                   "--bootstrap-servers", namespace.kafka_bootstrap])
    assert f"would re-drive {topic}.dlq" in capsys.readouterr().out
    assert event.to_bytes() not in {r.value for r in await read_topic(namespace.kafka_bootstrap, topic)}

    fixed = True
    for _ in range(2):
        letters = await redrive(settings, topic + ".dlq", ids={event.id})
        assert [(letter.event_id, letter.original_topic) for letter in letters] == [(event.id, topic)]
    back = [r for r in await read_topic(namespace.kafka_bootstrap, topic) if r.value == event.to_bytes()]
    assert len(back) == 2  # re-driven twice: published twice...
    assert {(r.key, tuple(r.headers)) for r in back} == {(key, (("traceparent", b"00-abc"),))}  # unchanged
    await runner.process([record(topic, r.offset, r.value, key=r.key) for r in back])
    assert applied == [event.id]  # ...applied once
    async with engine.connect() as conn:
        assert (await conn.execute(select(inbox.c.event_id).where(
            inbox.c.event_id.in_([event.id, bystander.id])))).scalars().all() == [event.id]
