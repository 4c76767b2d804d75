"""Stage engine against real PostgreSQL and a real broker: identity merges, late events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from lifecycle_ingest.publisher import to_cloud_event
from lifecycle_shared.events import TouchpointData
from lifecycle_shared.testing import eventually, read_topic

from tests.support.stage_engine import stage_engine_client

# Recent: a buyer's at-risk moment (days after their order) must not come during the test.
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
API_TOKEN = "test-api-token-7c2e9a40b15d3f68"
ADMIN_TOKEN = "test-admin-token-0b9d2e61c7a4f385"


@pytest.fixture(scope="module")
async def engine_api(namespace):
    async with stage_engine_client(namespace, api_token=API_TOKEN, admin_token=ADMIN_TOKEN, sends=API_TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
async def publish(namespace):
    producer = AIOKafkaProducer(bootstrap_servers=namespace.kafka_bootstrap, acks="all")
    await producer.start()

    async def send(minutes: int, **fields) -> str:
        data = TouchpointData(type=fields.pop("type", "track"), messageId=str(uuid.uuid4()),
                              timestamp=T0 + timedelta(minutes=minutes), receivedAt=T0, **fields)
        event = to_cloud_event(data, source="tests")
        await producer.send_and_wait(namespace.topic_prefix + "touchpoints.v1", event.to_bytes(),
                                     key=event.subject.encode())
        return event.id

    yield send
    await producer.stop()


async def _stage(client, customer: str, stage: str, orders: int | None = None):
    async def probe():
        response = await client.get(f"/v1/customers/{customer}")
        body = response.json() if response.status_code == 200 else None
        if body and body["stage"] == stage and (orders is None or body["orders"] == orders):
            return body
        return None

    return await eventually(probe, what=f"{customer} in {stage}")


async def test_anonymous_history_merges_into_the_known_customer(engine_api, publish):
    visitor, user = f"v-{uuid.uuid4().hex[:6]}", f"u-{uuid.uuid4().hex[:6]}"
    await publish(0, event="Product Viewed", anonymousId=visitor)
    await _stage(engine_api, visitor, "consideration")
    await publish(1, event="Order Completed", userId=user, properties={"order_id": "o1", "revenue": 5})
    await _stage(engine_api, user, "purchase")
    await publish(2, type="identify", userId=user, anonymousId=visitor, traits={"email": "a@example.com"})

    async def merged():
        body = (await engine_api.get(f"/v1/customers/{visitor}")).json()
        return body if body.get("customer_id") == user else None

    profile = await eventually(merged, what="the visitor's profile to resolve to the user")
    assert profile["anonymous_ids"] == [visitor]
    assert datetime.fromisoformat(profile["first_seen_at"]) == T0
    assert (profile["stage"], profile["orders"], profile["traits"]) == ("purchase", 1, {"email": "a@example.com"})
    transitions = (await engine_api.get(f"/v1/customers/{visitor}/transitions")).json()
    # One history, in event-time order: the visitor's consideration, then the order of the same person.
    assert [(t["from_stage"], t["to_stage"]) for t in transitions] == [
        (None, "consideration"), ("consideration", "purchase")]


async def test_a_late_event_refolds_the_history_in_event_time_order(engine_api, publish):
    user = f"u-{uuid.uuid4().hex[:6]}"
    await publish(10, event="Order Completed", userId=user, properties={"order_id": "o1", "revenue": 5})
    await _stage(engine_api, user, "purchase")
    await publish(30, event="Order Refunded", userId=user, properties={"order_id": "o1", "revenue": 5})
    await _stage(engine_api, user, "consideration")
    await publish(20, event="Order Completed", userId=user, properties={"order_id": "o2", "revenue": 7})
    profile = await _stage(engine_api, user, "purchase", orders=1)
    assert profile["revenue"] == 7
    transitions = (await engine_api.get(f"/v1/customers/{user}/transitions")).json()
    # The stored history is the event-time one (o1, o2, refund of o1), not the arrival order.
    assert [(t["from_stage"], t["to_stage"], t["reason"]) for t in transitions] == [
        (None, "purchase", "first_order"),
        ("purchase", "retention", "repeat_order"),
        ("retention", "purchase", "order_refunded"),
    ]


async def test_transitions_are_published_as_cloudevents_keyed_by_customer(engine_api, publish, namespace):
    user = f"u-{uuid.uuid4().hex[:6]}"
    cause = await publish(0, event="Signed Up", userId=user)
    records = await read_topic(namespace.kafka_bootstrap, namespace.topic_prefix + "stage-transitions.v1",
                               until=lambda r: r.key == user.encode())
    record = next(r for r in records if r.key == user.encode())
    envelope = json.loads(record.value)
    assert envelope["type"] == "lifecycle.stage_changed" and envelope["subject"] == user
    assert envelope["data"]["to_stage"] == "consideration"
    assert envelope["data"]["cause_event_ids"] == [cause]
    assert envelope["data"]["rule_version"] == "default-v2"


async def test_unknown_customer_is_404(engine_api):
    response = await engine_api.get("/v1/customers/nobody-here")
    assert response.status_code == 404 and "nobody-here" in response.json()["message"]


async def test_a_user_id_first_seen_as_an_anonymous_id_resolves_to_one_profile(engine_api, publish, namespace):
    shared, other_device = f"n-{uuid.uuid4().hex[:6]}", f"a-{uuid.uuid4().hex[:6]}"
    await publish(0, type="page", anonymousId=shared)  # a storefront using its customer number for both
    await _stage(engine_api, shared, "awareness")
    await publish(1, event="Order Completed", userId=shared, anonymousId=other_device,
                  properties={"order_id": "o1", "revenue": 5})
    await publish(2, type="identify", userId=shared, traits={"email": "n@example.com"})
    profile = await _stage(engine_api, shared, "purchase", orders=1)
    assert profile["user_id"] == shared and profile["anonymous_ids"] == sorted([shared, other_device])
    assert (await engine_api.get(f"/v1/customers/{other_device}")).json()["customer_id"] == shared
    await _no_dead_letters(namespace, shared)


async def test_an_anonymous_id_equal_to_a_known_user_id_is_that_customer(engine_api, publish, namespace):
    user = f"u-{uuid.uuid4().hex[:6]}"
    await publish(0, event="Order Completed", userId=user, properties={"order_id": "o1", "revenue": 5})
    await _stage(engine_api, user, "purchase")
    await publish(1, event="Product Viewed", anonymousId=user)
    await publish(2, event="Order Completed", userId=user, properties={"order_id": "o2", "revenue": 5})
    profile = await _stage(engine_api, user, "retention", orders=2)
    assert profile["anonymous_ids"] == [user]
    await _no_dead_letters(namespace, user)


async def test_a_refund_takes_back_what_its_order_held_whatever_revenue_it_names(engine_api, publish):
    user = f"u-{uuid.uuid4().hex[:6]}"
    await publish(0, event="Order Completed", userId=user, properties={"order_id": "o1", "revenue": 40})
    await publish(1, event="Order Completed", userId=user, properties={"order_id": "o2", "revenue": 2})
    await _stage(engine_api, user, "retention")
    await publish(2, event="Order Refunded", userId=user, properties={"order_id": "o1"})  # no revenue at all
    profile = await _stage(engine_api, user, "purchase", orders=1)
    assert profile["revenue"] == 2


async def _no_dead_letters(namespace, key: str) -> None:
    dead = await read_topic(namespace.kafka_bootstrap, namespace.topic_prefix + "touchpoints.v1.dlq", timeout_s=2)
    assert [r for r in dead if r.key == key.encode()] == []


async def test_an_id_with_a_slash_can_be_read_back(engine_api, publish):
    user = f"shop/{uuid.uuid4().hex[:6]}"
    await publish(0, event="Signed Up", userId=user)
    await _stage(engine_api, user.replace("/", "%2F"), "consideration")
    transitions = (await engine_api.get(f"/v1/customers/{user.replace('/', '%2F')}/transitions")).json()
    assert [t["to_stage"] for t in transitions] == ["consideration"]
