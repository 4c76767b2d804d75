"""Consumer lag is measured from the broker on a timer, so it keeps growing while a consumer is stuck on a
record (it commits nothing, and the runner's own figure, set when it commits, stands still). A real
broker, a real runner whose handler never returns, and the series every consumer has from the start."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from lifecycle_shared.events import TYPE_HEADER
from lifecycle_shared.kafka.clients import make_consumer
from lifecycle_shared.kafka.lag import LagMonitor
from lifecycle_shared.kafka.registry import Route, each, route_by_type, routed_types
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.settings import KafkaSettings
from lifecycle_shared.testing import make_cloud_event
from lifecycle_shared.topics import Topics
from prometheus_client import REGISTRY
from pydantic import BaseModel, ConfigDict

STUCK_TYPE = "test.stuck"


class AnyData(BaseModel):
    model_config = ConfigDict(extra="allow")


def _lag(consumer: str, topic: str) -> float:
    return sum(REGISTRY.get_sample_value("lifecycle_consumer_lag",
                                         {"consumer": consumer, "topic": topic, "partition": str(p)}) or 0.0
               for p in range(64))


async def _send(producer: AIOKafkaProducer, topic: str, count: int) -> None:
    for _ in range(count):
        event = make_cloud_event(type=STUCK_TYPE)
        await producer.send_and_wait(topic, event.model_dump_json().encode(), key=event.subject.encode(),
                                     headers=[(TYPE_HEADER, STUCK_TYPE.encode())])


async def test_lag_grows_while_a_consumer_is_stuck_on_a_record(runner_parts, namespace):
    engine, producer = runner_parts
    settings = KafkaSettings(bootstrap_servers=namespace.kafka_bootstrap, topic_prefix=namespace.topic_prefix,
                             enable_idempotence=False)
    topic = Topics(namespace.topic_prefix).touchpoints
    group = f"lag-test-{uuid.uuid4().hex[:6]}"
    entered, release = asyncio.Event(), asyncio.Event()

    async def stuck(conn, typed):
        entered.set()
        await release.wait()  # stuck: never returns while the test measures
        return []

    router = route_by_type({STUCK_TYPE: Route(AnyData, each(stuck))})
    consumer = make_consumer(settings, group_id=group, topics=[topic])
    runner = ConsumerRunner(name=group, consumer=consumer, producer=producer, engine=engine, route=router,
                            event_types=routed_types(router))
    # The dead-letter series of the consumed type exists before anything went wrong, at 0.
    assert REGISTRY.get_sample_value("lifecycle_events_consumed_total",
                                     {"consumer": group, "type": STUCK_TYPE, "outcome": "dead_lettered"}) == 0.0
    monitor = LagMonitor(settings, {group: [topic]}, interval_s=3600)
    task = asyncio.create_task(runner.run())
    try:
        await _send(producer, topic, 3)
        await asyncio.wait_for(entered.wait(), 30)
        first = await monitor.measure_once()
        assert sum(first.values()) >= 3 and _lag(group, topic) == sum(first.values())
        await _send(producer, topic, 4)
        second = await monitor.measure_once()
        assert sum(second.values()) == sum(first.values()) + 4  # still stuck, and the gauge says so
        assert _lag(group, topic) == sum(second.values())
    finally:
        release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await monitor.stop()
