"""Nothing lost, nothing doubled: duplicates, a SIGKILLed consumer, a poison record."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from lifecycle_shared.events import CloudEvent
from lifecycle_shared.testing import eventually, make_touchpoint, read_topic


async def _consumed(client, url: str, outcome: str | None = None) -> float:
    """Sum of lifecycle_events_consumed_total samples (optionally of one outcome)."""
    text = (await client.get(url + "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("lifecycle_events_consumed_total{")
               and (outcome is None or f'outcome="{outcome}"' in line))


async def _consumed_above(client, url: str, threshold: float, outcome: str | None = None) -> bool:
    return await _consumed(client, url, outcome) > threshold


async def test_the_same_event_delivered_twice_changes_nothing(pipeline):
    user = f"user-{uuid.uuid4().hex[:8]}"
    order = make_touchpoint(event="Order Completed", userId=user, properties={"revenue": 30})
    async with pipeline.client() as client:
        duplicates_before = await _consumed(client, pipeline.url("stage-engine"), "duplicate")
        for _ in range(2):  # a client retry: same messageId
            assert (await pipeline.send(client, order)).status_code == 200

        async def earned():
            balance = await pipeline.get(client, "loyalty", f"/v1/customers/{user}/balance")
            return balance if balance and balance["entries"] else None

        await eventually(earned, what="points for the order")
        # A broker-level redelivery: the very record published again.
        producer = AIOKafkaProducer(bootstrap_servers=pipeline.config.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            # Found by its event id (`<source>/<messageId>`), readable on a sealed record too.
            record = next(r for r in await read_topic(pipeline.config.kafka_bootstrap,
                                                    pipeline.config.topic_prefix + "touchpoints.v1")
                          if CloudEvent.model_validate_json(r.value).id.endswith("/" + order["messageId"]))
            await producer.send_and_wait(record.topic, record.value, key=record.key)
        finally:
            await producer.stop()
        # The client's retry and the redelivered record: two duplicates seen, none applied.
        await eventually(lambda: _consumed_above(client, pipeline.url("stage-engine"), duplicates_before + 1.5,
                                                 "duplicate"), what="both duplicates to be seen")
        profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{user}")
        transitions = await pipeline.get(client, "stage-engine", f"/v1/customers/{user}/transitions")
        balance = await pipeline.get(client, "loyalty", f"/v1/customers/{user}/balance")
    assert profile["orders"] == 1 and profile["stage"] == "purchase"
    assert [t["to_stage"] for t in transitions] == ["purchase"]
    assert (balance["balance"], balance["entries"]) == (30, 1)


async def test_a_consumer_killed_mid_stream_loses_nothing_and_duplicates_nothing(pipeline):
    run = uuid.uuid4().hex[:6]
    customers = [f"kill-{run}-{n}" for n in range(400)]

    def journey(customer: str) -> list[dict]:
        return [make_touchpoint(type="page", event=None, anonymousId=None, userId=customer),
                make_touchpoint(event="Product Viewed", anonymousId=None, userId=customer),
                make_touchpoint(event="Order Completed", anonymousId=None, userId=customer,
                                properties={"order_id": f"{customer}-a", "revenue": 10}),
                make_touchpoint(event="Order Completed", anonymousId=None, userId=customer,
                                properties={"order_id": f"{customer}-b", "revenue": 20})]

    events = [event for customer in customers for event in journey(customer)]
    first, second = events[: len(events) // 2], events[len(events) // 2:]
    engine = pipeline.processes["stage-engine"]
    async with pipeline.client() as client:
        consumed_before = await _consumed(client, engine.url)
        await asyncio.gather(*(pipeline.send(client, *first[i:i + 100]) for i in range(0, len(first), 100)))
        await eventually(lambda: _consumed_above(client, engine.url, consumed_before),
                         interval_s=0.01, what="the stage engine to start consuming")
        engine.kill()
        responses = await asyncio.gather(*(pipeline.send(client, *second[i:i + 100])
                                           for i in range(0, len(second), 100)))
        assert all(r.status_code == 200 for r in responses)
        engine.start()
        engine.wait_ready()

        async def all_retained():
            profiles = await asyncio.gather(*(pipeline.get(client, "stage-engine", f"/v1/customers/{c}")
                                              for c in customers))
            return all(p and p["stage"] == "retention" for p in profiles) and profiles

        profiles = await eventually(all_retained, timeout_s=90, interval_s=1, what="every customer in retention")
        assert all(p["orders"] == 2 and p["revenue"] == 30 for p in profiles)
        for customer in customers:
            transitions = await pipeline.get(client, "stage-engine", f"/v1/customers/{customer}/transitions")
            assert [t["to_stage"] for t in transitions] == ["awareness", "consideration", "purchase", "retention"]

        async def all_points():
            balances = await asyncio.gather(*(pipeline.get(client, "loyalty", f"/v1/customers/{c}/balance")
                                              for c in customers))
            return all(b and b["entries"] == 2 for b in balances) and balances

        balances = await eventually(all_points, timeout_s=60, interval_s=1, what="every customer's points")
        assert all(b["balance"] == 30 for b in balances)
        messages = await pipeline.get(client, "messaging", f"/v1/customers/{customers[0]}/messages")
        assert sorted(m["template"] for m in messages) == sorted([  # the feedback request: superseded, once
            "welcome", "consideration_nudge", "thank_you_feedback", "feedback_request", "retention_offer"])


async def test_a_malformed_record_goes_to_the_dlq_and_the_partition_keeps_flowing(pipeline):
    customer = f"poison-{uuid.uuid4().hex[:8]}"
    topic = pipeline.config.topic_prefix + "touchpoints.v1"
    bad_envelope = b'{"not": "a cloudevent"'
    bad_data = CloudEvent(id=str(uuid.uuid4()), source="/tests", type="touchpoint.order_completed",
                          time="2026-01-01T00:00:00Z", subject=customer, data={"type": "track"}).to_bytes()
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.config.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in (bad_envelope, bad_data):  # same key: same partition, ahead of the good event
            await producer.send_and_wait(topic, value, key=customer.encode())
    finally:
        await producer.stop()
    async with pipeline.client() as client:
        assert (await pipeline.send(client, make_touchpoint(userId=customer, anonymousId=None))).status_code == 200

        async def profile():
            return await pipeline.get(client, "stage-engine", f"/v1/customers/{customer}")

        assert (await eventually(profile, what="the good event behind the poison"))["stage"] == "consideration"
    dead = [r for r in await read_topic(pipeline.config.kafka_bootstrap, topic + ".dlq") if r.key == customer.encode()]
    assert {r.value for r in dead} == {bad_envelope, bad_data}
    for record in dead:
        headers = dict(record.headers)
        assert headers["dlq.original.topic"].decode() == topic
        assert headers["dlq.error"]
