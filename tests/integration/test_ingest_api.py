"""Ingest against real PostgreSQL and a real broker: auth, validation, limits, publishing."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_ingest.domain.touchpoints import event_id
from lifecycle_ingest.main import create_app
from lifecycle_shared.testing import eventually, make_touchpoint, read_topic

from tests.support.in_process import running
from tests.support.ingest import ADMIN_TOKEN, _consume_until, settings_for, settings_on


@pytest.fixture(scope="module")
async def ingest(namespace):
    async with running(create_app(settings_for(namespace))) as client:
        response = await client.post("/v1/admin/keys", json={"source": "web-shop", "kind": "server"},
                                     headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert response.status_code == 201
        client.auth = (response.json()["key"], "")
        client.key_id = response.json()["key_id"]
        yield client


async def test_missing_write_key_is_401_naming_the_fix(ingest):
    response = await ingest.post("/v1/track", json=make_touchpoint(), auth=None)
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    assert "HTTP Basic user" in response.json()["message"] and "writeKey" in response.json()["message"]


async def test_unknown_write_key_is_401(ingest):
    response = await ingest.post("/v1/track", json=make_touchpoint(), auth=("lc_wk_nope", ""))
    assert (response.status_code, response.json()["message"]) == (401, "unknown, expired or revoked key")


@pytest.mark.parametrize(("body", "field"), [
    ({"event": "X"}, "userId"),
    ({"anonymousId": "a"}, "event"),
    ({"event": "X", "anonymousId": "null"}, "anonymousId"),
    ({"event": "X", "anonymousId": "a", "messageId": "m" * 101}, "messageId"),
    ({"event": "X", "anonymousId": "a", "timestamp": "yesterday"}, "timestamp"),
    ({"event": "X", "anonymousId": "a", "properties": []}, "properties"),
])
async def test_invalid_touchpoint_is_400_naming_the_field(ingest, body, field):
    response = await ingest.post("/v1/track", json=body)
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_body_that_is_not_json_is_400(ingest):
    response = await ingest.post("/v1/track", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["message"]


async def test_event_over_32_kb_is_413(ingest):
    response = await ingest.post("/v1/track", json=make_touchpoint(properties={"blob": "x" * 33_000}))
    assert response.status_code == 413


async def test_gzipped_body_is_limited_after_inflating(ingest):
    body = gzip.compress(json.dumps(make_touchpoint(properties={"blob": "x" * 40_000})).encode())
    response = await ingest.post("/v1/track", content=body, headers={"content-encoding": "gzip"})
    assert len(body) < 32 * 1024 and response.status_code == 413


async def test_batch_over_2500_events_is_413(ingest):
    response = await ingest.post("/v1/batch", json={"batch": [{"type": "track"}] * 2501})
    assert response.status_code == 413 and "2500" in response.json()["message"]


async def test_a_batch_with_a_refused_item_is_a_400_keeping_and_naming_the_accepted_ones(ingest, namespace):
    good = make_touchpoint(userId=f"u-{uuid.uuid4().hex[:6]}")
    bad = make_touchpoint(event=None)
    response = await ingest.post("/v1/batch", json={"batch": [good, bad], "context": {"library": {"name": "t"}}})
    assert (response.status_code, response.json()["code"]) == (400, "partially_rejected")
    assert response.json()["accepted"] == 1 and response.json()["messageIds"] == [good["messageId"]]
    assert response.json()["rejected"] == [{"index": 1, "messageId": bad["messageId"], "status": 400,
                                            "code": "invalid_request",
                                            "errors": [{"field": "event", "message": "required for type 'track'"}]}]
    assert "1 of 2 events refused" in response.json()["message"]
    published = await _consume_until(namespace, good["messageId"])
    assert published.key == good["userId"].encode()
    assert json.loads(published.value)["data"]["context"] == {"library": {"name": "t"}}


async def test_batch_with_only_invalid_items_is_400(ingest):
    response = await ingest.post("/v1/batch", json={"batch": [{"type": "track"}]})
    assert response.status_code == 400 and response.json()["accepted"] == 0


async def test_accepted_touchpoint_is_a_cloudevent_keyed_by_customer_with_skew_corrected_time(ingest, namespace):
    now = datetime.now(UTC)
    event = make_touchpoint(event="Order Completed", userId="u-skew", anonymousId="a-skew",
                            timestamp=(now - timedelta(hours=1)).isoformat(),
                            sentAt=(now - timedelta(hours=1) + timedelta(seconds=5)).isoformat())
    response = await ingest.post("/v1/track", json=event)
    assert response.json() == {"success": True, "messageId": event["messageId"]}
    record = await _consume_until(namespace, event["messageId"])
    envelope = json.loads(record.value)
    assert record.key == b"u-skew"
    assert (envelope["specversion"], envelope["type"], envelope["subject"], envelope["source"]) == (
        "1.0", "touchpoint.order_completed", "u-skew", "/sources/web-shop")
    # The id is the messageId scoped to the source; the content digest tells retries from reuse.
    assert envelope["id"] == event_id(source="web-shop", message_id=event["messageId"])
    assert envelope["data"]["messageId"] == event["messageId"] and len(envelope["digest"]) == 64
    # The client's clock ran an hour slow: the event happened ~5 s before it was received.
    happened = datetime.fromisoformat(envelope["time"])
    received = datetime.fromisoformat(envelope["data"]["receivedAt"])
    assert timedelta(seconds=4) < received - happened < timedelta(seconds=6)


async def test_an_empty_user_id_beside_an_anonymous_id_is_accepted_with_a_write_key(ingest, namespace):
    """RudderStack's browser SDK sends `userId: ""` on every event before identify: the page view is
    accepted, keyed by the anonymousId, and carries no userId. An empty id alone is still refused."""
    response = await ingest.post("/v1/admin/keys", json={"source": "web-shop", "kind": "write"}, auth=None,
                                 headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    write_key = (response.json()["key"], "")
    message_id = f"m-empty-{uuid.uuid4().hex}"
    response = await ingest.post("/v1/page", auth=write_key, json={
        "type": "page", "anonymousId": "a-empty-user", "userId": "", "messageId": message_id})
    assert (response.status_code, response.json()) == (200, {"success": True, "messageId": message_id})
    record = await _consume_until(namespace, message_id)
    assert record.key == b"a-empty-user" and "userId" not in json.loads(record.value)["data"]
    refused = await ingest.post("/v1/page", auth=write_key, json={"type": "page", "userId": "", "anonymousId": ""})
    assert refused.status_code == 400 and refused.json()["errors"][0]["message"] == "'' is not a usable id"


@pytest.mark.parametrize("depth", [900, 5000, 200_000])
async def test_an_item_nested_thousands_deep_is_a_400_for_it_alone(ingest, depth):
    good = [make_touchpoint(userId=f"u-{uuid.uuid4().hex[:6]}") for _ in range(2)]
    nested = b"[" * depth + b"]" * depth
    deep = b'{"type": "track", "event": "X", "anonymousId": "a", "properties": {"p": ' + nested + b"}}"
    body = b'{"batch": [' + json.dumps(good[0]).encode() + b", " + deep + b", " + json.dumps(good[1]).encode() + b"]}"
    response = await ingest.post("/v1/batch", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["accepted"] == 2
    [rejected] = response.json()["rejected"]
    assert rejected["index"] == 1 and "nested deeper than 32 levels" in rejected["errors"][0]["message"]


@pytest.mark.parametrize(("raw_item", "field"), [
    (b'{"type": "track", "event": "X", "anonymousId": "a", "properties": {"t": "\\ud800"}}', "properties.t"),
    (b'{"type": "track", "event": "X", "anonymousId": "a", "properties": {"t": "a\\u0000b"}}', "properties.t"),
    (b'{"type": "track", "event": "X", "anonymousId": "a", "properties": {"revenue": NaN}}', "properties.revenue"),
    (b'{"type": "track", "event": "X", "anonymousId": "a", "properties": {"revenue": 1e400}}', "properties.revenue"),
    (b'{"type": "track", "event": "X", "anonymousId": "a", "properties": {"revenue": "inf"}}', "properties.revenue"),
    (b'{"type": "track", "event": "X", "anonymousId": "a", "originalTimestamp": "0001-01-01T00:00:00Z", '
     b'"sentAt": "9999-12-31T23:59:59Z"}', "originalTimestamp"),
    (b'{"type": "track", "event": "X", "userId": true}', "userId"),
])
async def test_unstorable_or_impossible_values_are_a_400_naming_the_field_never_a_500(ingest, raw_item, field):
    single = await ingest.post("/v1/track", content=raw_item, headers={"content-type": "application/json"})
    assert single.status_code == 400, single.text
    assert field in [error["field"] for error in single.json()["errors"]]
    good = json.dumps(make_touchpoint()).encode()
    batch = await ingest.post("/v1/batch", content=b'{"batch": [' + raw_item + b", " + good + b"]}",
                              headers={"content-type": "application/json"})
    assert (batch.status_code, batch.json()["accepted"]) == (400, 1)
    assert field in [error["field"] for error in batch.json()["rejected"][0]["errors"]]


async def test_an_item_too_large_to_publish_is_refused_alone_and_nothing_else_is_sent(ingest, namespace):
    user = f"u-{uuid.uuid4().hex[:6]}"
    good = make_touchpoint(userId=user, event="Product Viewed")
    bloated = make_touchpoint(userId=user, properties={"a": [1e15] * 9_000})  # "1e15" re-encodes 4.5 times longer
    response = await ingest.post("/v1/batch", json={"batch": [good, bloated]})
    assert (response.status_code, response.json()["accepted"]) == (413, 1)
    assert response.json()["rejected"][0]["errors"][0]["field"] == "(event)"
    await _consume_until(namespace, good["messageId"])


async def test_a_batch_context_is_counted_in_every_item_it_is_merged_into(ingest):
    items = [make_touchpoint() for _ in range(3)]
    response = await ingest.post("/v1/batch", json={"batch": items, "context": {"blob": "x" * 100_000}})
    assert response.status_code == 413 and "batch context" in response.json()["message"]
    near_limit = {"blob": "x" * 30_000}  # under an event's 32 KB; with an item of 110 KB, over 128 KB
    items = [make_touchpoint(), make_touchpoint(properties={"big": "y" * 110_000})]
    response = await ingest.post("/v1/batch", json={"batch": items, "context": near_limit})
    assert (response.status_code, response.json()["accepted"]) == (413, 1)
    assert {e["field"] for r in response.json()["rejected"] for e in r["errors"]} == {"(event)"}


@pytest.mark.parametrize(("properties", "context", "field"), [
    ({"order_id": "x" * 201}, {}, "properties.order_id"),
    ({"order_id": {"id": 1}}, {}, "properties.order_id"),
    ({}, {"traits": "ann@example.com"}, "context.traits"),
    ({}, {"traits": ["a"]}, "context.traits"),
])
async def test_values_consumers_could_not_apply_are_refused_at_the_edge(ingest, properties, context, field):
    response = await ingest.post("/v1/track", json=make_touchpoint(event="Order Completed", properties=properties,
                                                                   context=context))
    assert response.status_code == 400 and [e["field"] for e in response.json()["errors"]] == [field]


async def test_null_context_traits_are_no_traits(ingest):
    assert (await ingest.post("/v1/track", json=make_touchpoint(context={"traits": None}))).status_code == 200


@pytest.mark.parametrize("damage", [lambda body: body[:-8], lambda body: body + b"trailing junk"],
                         ids=["truncated", "trailing-bytes"])
async def test_a_damaged_gzip_body_is_a_400(ingest, damage):
    body = damage(gzip.compress(json.dumps(make_touchpoint()).encode()))
    response = await ingest.post("/v1/track", content=body, headers={"content-encoding": "gzip"})
    assert response.status_code == 400 and "gzip" in response.json()["message"]


async def test_revoked_key_stops_working(namespace):
    async with running(create_app(settings_for(namespace))) as client:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        created = (await client.post("/v1/admin/keys", json={"source": "pos"}, headers=admin)).json()
        auth = (created["key"], "")
        assert (await client.post("/v1/track", json=make_touchpoint(), auth=auth)).status_code == 200
        assert (await client.delete(f"/v1/admin/keys/{created['key_id']}", headers=admin)).status_code == 204
        assert (await client.post("/v1/track", json=make_touchpoint(), auth=auth)).status_code == 401


async def test_admin_api_needs_the_admin_token(ingest):
    response = await ingest.post("/v1/admin/keys", json={"source": "x"}, headers={"authorization": "Bearer wrong"})
    assert response.status_code == 401


async def test_broker_down_is_503_saying_nothing_was_accepted_and_not_ready(namespace, own_broker):
    broker, proxy = own_broker
    await proxy.start()
    try:
        async with running(create_app(settings_on(namespace, broker))) as client:
            client.auth = await _new_key(client, "down")
            assert (await client.post("/v1/track", json=make_touchpoint())).status_code == 200
            broker.stop()

            async def refused_as_not_ready():
                response = await client.post("/v1/batch", json={"batch": [make_touchpoint(), make_touchpoint()]})
                assert response.status_code == 503, response.text  # never a 200, never a 500
                return response if "nothing was accepted" in response.json()["message"] else None

            response = await eventually(refused_as_not_ready, timeout_s=20, what="a 503 once the broker is known down")
            assert response.headers["retry-after"] == "5"
            readiness = await client.get("/readyz")
            assert readiness.status_code == 503 and readiness.json()["checks"]["topics"] is False
    finally:
        await proxy.stop()


async def test_a_stalled_broker_gets_an_honest_503_and_the_retry_is_recognised(namespace, own_broker):
    broker, proxy = own_broker
    await proxy.start()
    user = f"u-{uuid.uuid4().hex[:6]}"
    # No messageIds, as a hand-written client might send them: the events carry their own time.
    orders = [{"type": "track", "event": "Order Completed", "userId": user, "timestamp": "2026-05-01T10:00:00Z",
               "properties": {"order_id": f"o{n}", "revenue": 10}} for n in range(2)]
    try:
        async with running(create_app(settings_on(namespace, broker))) as client:
            client.auth = await _new_key(client, "stalled")
            assert (await client.post("/v1/track", json=make_touchpoint())).status_code == 200
            proxy.stall()
            stalled = await client.post("/v1/batch", json={"batch": orders})
            assert stalled.status_code == 503
            assert "some may have been accepted" in stalled.json()["message"]
            ids = stalled.json()["messageIds"]
            proxy.resume()  # the records handed over before the timeout arrive after all
            topic = namespace.topic_prefix + "touchpoints.v1"
            wanted = {event_id(source="stalled", message_id=i) for i in ids}
            seen: set[str] = set()

            def all_arrived(record) -> bool:
                seen.add(json.loads(record.value)["id"])
                return wanted <= seen

            await read_topic(broker.bootstrap_servers, topic, until=all_arrived)

            async def retried():
                response = await client.post("/v1/batch", json={"batch": orders})
                return response if response.status_code == 200 else None

            # The same request again: the same ids, so every consumer's inbox applies each once.
            assert (await eventually(retried, what="the retry to be accepted")).json()["messageIds"] == ids
    finally:
        await proxy.stop()


async def _new_key(client, source: str) -> tuple[str, str]:
    created = (await client.post("/v1/admin/keys", json={"source": source, "kind": "server"},
                                 headers={"authorization": f"Bearer {ADMIN_TOKEN}"})).json()
    return (created["key"], "")


async def test_verified_is_ingests_judgement_and_the_user_hash_is_not_carried(ingest, namespace):
    """A server key's events are verified; a write key's only with a valid `context.userHash` (not carried on);
    a `verified` the client sends is ignored; a hash that does not match its userId is a 403 naming the field."""
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    write_key = ((await ingest.post("/v1/admin/keys", json={"source": "hash-shop", "kind": "write"}, auth=None,
                                    headers=admin)).json()["key"], "")
    secret = (await ingest.post("/v1/admin/sources/hash-shop/identity-secret", auth=None,
                                headers=admin)).json()["identity_secret"]
    good = hmac.new(secret.encode(), b"u-hash", hashlib.sha256).hexdigest()
    cases = [(ingest.auth, {}, True), (write_key, {}, False), (write_key, {"userHash": good, "ip": "1.2.3.4"}, True)]
    for auth, context, verified in cases:
        event = make_touchpoint(userId="u-hash", context=context, verified=True)
        response = await ingest.post("/v1/track", auth=auth, json=event)
        assert response.status_code == 200, response.text
        data = json.loads((await _consume_until(namespace, event["messageId"])).value)["data"]
        assert data["verified"] is verified
        assert "userHash" not in data["context"] and data["context"].get("ip") == context.get("ip")
    refused = await ingest.post("/v1/track", auth=write_key, json=make_touchpoint(
        userId="someone-else", context={"userHash": good}))
    assert refused.status_code == 403
    assert (refused.json()["code"], refused.json()["errors"][0]["field"]) == ("identity_unverified", "context.userHash")
