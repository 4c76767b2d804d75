"""The outbox relay against real PostgreSQL and a real broker: a row the broker can never take is
set aside with its reason, and the rows behind it are published; a row's trace context reaches its record."""

from __future__ import annotations

import uuid

from lifecycle_devstack.services import BY_NAME
from lifecycle_shared import tracing
from lifecycle_shared.db import add_to_outbox, create_engine, outbox
from lifecycle_shared.kafka.clients import make_producer
from lifecycle_shared.kafka.relay import OutboxRelay
from lifecycle_shared.testing import make_cloud_event, read_topic
from sqlalchemy import delete, select

from tests.support.in_process import kafka_settings
from tests.support.tracing import in_memory_tracing


async def test_an_outbox_row_too_large_to_publish_is_set_aside_and_blocks_nothing(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["stage-engine"]))
    producer = make_producer(kafka_settings(namespace))
    await producer.start()
    topic = namespace.topic_prefix + "stage-transitions.v1"
    customer = f"c-{uuid.uuid4().hex[:8]}"
    huge = make_cloud_event(subject=customer, data={"traits": {"firstName": "F" * 1_200_000}})  # > 1 MB
    after = [make_cloud_event(subject=customer, data={"n": n}) for n in range(3)]
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(outbox))
            await add_to_outbox(conn, [(topic, huge), *((topic, event) for event in after)])
        relay = OutboxRelay(engine=engine, producer=producer, service="relay-test")
        assert await relay.publish_once() == 3
        assert await relay.publish_once() == 0  # the row set aside is not tried again
        records = await read_topic(namespace.kafka_bootstrap, topic, until=lambda r: r.key == customer.encode())
        assert [r.value for r in records if r.key == customer.encode()] == [e.to_bytes() for e in after]
        async with engine.connect() as conn:
            left = (await conn.execute(select(outbox.c.event_id, outbox.c.dead_at, outbox.c.last_error))).all()
        assert [(row.event_id, row.dead_at is not None, row.last_error) for row in left] == [
            (huge.id, True, "MessageSizeTooLargeError")]
    finally:
        await producer.stop()
        await engine.dispose()


async def test_an_outbox_row_keeps_the_trace_context_and_the_relay_publishes_it(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["stage-engine"]))
    producer = make_producer(kafka_settings(namespace))
    await producer.start()
    topic = namespace.topic_prefix + "stage-transitions.v1"
    customer = f"c-{uuid.uuid4().hex[:8]}"
    traced, untraced, chosen = (make_cloud_event(subject=customer, data={"n": n}) for n in range(3))
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        with in_memory_tracing():
            with tracing.tracer().start_as_current_span("route") as span:
                async with engine.begin() as conn:
                    await conn.execute(delete(outbox))
                    await add_to_outbox(conn, [(topic, traced)])  # the current span's context
                    await add_to_outbox(conn, [(topic, untraced), (topic, chosen)], trace=[{}, {"traceparent": given}])
            expected = tracing.headers_of(span)["traceparent"]
        relay = OutboxRelay(engine=engine, producer=producer, service="relay-test")
        assert await relay.publish_once() == 3
        records = await read_topic(namespace.kafka_bootstrap, topic,
                                   until=lambda r: r.key == customer.encode() and r.value == chosen.to_bytes())
        ours = [dict(r.headers).get("traceparent") for r in records if r.key == customer.encode()]
        assert ours == [expected.encode(), None, given.encode()]
    finally:
        await producer.stop()
        await engine.dispose()
