"""A graceful stop of the shared runner: `drain` lets the batch in hand finish and commit, then `run` returns."""

from __future__ import annotations

import asyncio
import uuid

from lifecycle_shared.events import TYPE_HEADER
from lifecycle_shared.kafka.clients import make_consumer
from lifecycle_shared.kafka.lag import LagMonitor
from lifecycle_shared.kafka.registry import Route, each, route_by_type
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.settings import KafkaSettings
from lifecycle_shared.testing import make_cloud_event
from lifecycle_shared.topics import Topics
from pydantic import BaseModel, ConfigDict

DRAINED_TYPE = "touchpoint.drain_test"


class AnyData(BaseModel):
    model_config = ConfigDict(extra="allow")


async def test_a_drained_runner_finishes_and_commits_its_batch_then_returns(runner_parts, namespace):
    engine, producer = runner_parts
    settings = KafkaSettings(bootstrap_servers=namespace.kafka_bootstrap, topic_prefix=namespace.topic_prefix,
                             enable_idempotence=False)
    topic = Topics(namespace.topic_prefix).touchpoints
    group = f"drain-test-{uuid.uuid4().hex[:6]}"
    for _ in range(5):
        event = make_cloud_event(type=DRAINED_TYPE)
        await producer.send_and_wait(topic, event.model_dump_json().encode(), key=event.subject.encode(),
                                     headers=[(TYPE_HEADER, DRAINED_TYPE.encode())])
    entered, release, applied = asyncio.Event(), asyncio.Event(), []

    async def slow(conn, typed):
        entered.set()
        await release.wait()  # the batch is in hand when the stop comes
        applied.append(typed.event.id)
        return []

    consumer = make_consumer(settings, group_id=group, topics=[topic])
    runner = ConsumerRunner(name=group, consumer=consumer, producer=producer, engine=engine,
                            route=route_by_type({DRAINED_TYPE: Route(AnyData, each(slow))}))
    task = asyncio.create_task(runner.run())
    monitor = LagMonitor(settings, {group: [topic]}, interval_s=3600)
    try:
        await asyncio.wait_for(entered.wait(), 30)
        runner.drain()
        release.set()
        await asyncio.wait_for(task, 30)  # returns by itself: not cancelled
        assert applied
        lag = await monitor.measure_once()  # from the broker: the group's committed offsets
        assert sum(lag.values()) == 5 - len(applied)
    finally:
        release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await monitor.stop()
