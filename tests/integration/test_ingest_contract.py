"""Ingest's HTTP contract with what storefront clients really send, against real PostgreSQL and a
real broker: liberal acceptance, analytics.js's short paths and text/plain bodies with the key in
the body, CORS per source, server-only events, rate limits, trace context, request ids, and the
status of every error."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from lifecycle_ingest.main import create_app
from lifecycle_shared.testing import eventually, make_touchpoint, read_topic

from tests.support.in_process import running
from tests.support.ingest import ADMIN_TOKEN, _consume_until, settings_for, settings_on

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
SHOP = "http://shop.example.test:8080"


@pytest.fixture(scope="module")
async def ingest(namespace):
    async with running(create_app(settings_for(namespace, rate_limit_events_per_s=50.0, rate_limit_burst=2500))) as c:
        c.server_key = (await c.post("/v1/admin/keys", json={"source": "contract", "kind": "server"},
                                     headers=ADMIN)).json()["key"]
        c.write_key = (await c.post("/v1/admin/keys", json={"source": "contract"}, headers=ADMIN)).json()["key"]
        assert (await c.put("/v1/admin/sources/contract", json={"allowed_origins": [SHOP]},
                            headers=ADMIN)).status_code == 200

        async def origin_known() -> bool:
            preflight = await c.options("/v1/t", headers={"origin": SHOP, "access-control-request-method": "POST"})
            return preflight.status_code == 204
        await eventually(origin_known, timeout_s=10, what="the source's origins loaded")
        yield c


async def _published(namespace, message_id: str):
    return await _consume_until(namespace, message_id)


async def test_segment_page_and_screen_fields_are_accepted_and_carried(ingest, namespace):
    """What segment-analytics-python and rudder-sdk-python send on every page(): `category: null`,
    plus fields we do not use; carried, not refused."""
    page = make_touchpoint(type="page", event=None, name="Home", channel="server", integrations={},
                           context={"library": {"name": "analytics-python", "version": "2.4.0"}},
                           **{"_metadata": {"bundled": []}, "somethingNew": [1, 2]})
    page |= {"category": None, "properties": None, "traits": None, "writeKey": None}
    response = await ingest.post("/v1/page", json=page, auth=(ingest.server_key, ""))
    assert response.status_code == 200, response.text
    data = json.loads((await _published(namespace, page["messageId"])).value)["data"]
    assert (data["name"], data["channel"], data["somethingNew"], data["properties"]) == ("Home", "server", [1, 2], {})
    assert "writeKey" not in data and "category" not in data


async def test_analytics_js_short_paths_text_plain_and_the_key_in_the_body(ingest, namespace):
    for path, kind, extra in [("t", "track", {"event": "Product Viewed"}), ("p", "page", {"category": "Docs"}),
                              ("i", "identify", {"userId": "u-short", "traits": {"email": "s@example.com"}}),
                              ("s", "screen", {}), ("g", "group", {"groupId": "g1", "traits": {"name": "Acme"}}),
                              ("a", "alias", {"userId": "u-short", "previousId": "p-short"})]:
        event = make_touchpoint(**{"type": kind, "event": None, "writeKey": ingest.write_key, **extra})
        response = await ingest.post(f"/v1/{path}", content=json.dumps(event).encode(),
                                     headers={"content-type": "text/plain", "origin": SHOP})
        assert response.status_code == 200, (path, response.text)
        assert response.headers["access-control-allow-origin"] == SHOP
        assert "access-control-allow-credentials" not in response.headers
    batch = {"batch": [make_touchpoint(writeKey=ingest.write_key) for _ in range(2)], "writeKey": ingest.write_key}
    response = await ingest.post("/v1/b", content=json.dumps(batch).encode(), headers={"content-type": "text/plain"})
    assert (response.status_code, response.json()["accepted"]) == (200, 2)
    await _published(namespace, batch["batch"][1]["messageId"])


async def test_cors_preflight_is_answered_for_a_listed_origin_only_and_never_with_credentials(ingest):
    asked = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    allowed = await ingest.options("/v1/batch", headers={"origin": SHOP, **asked})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in allowed.headers
    retried = await ingest.options("/v1/t", headers={"origin": SHOP, "access-control-request-method": "POST",
                                                     "access-control-request-headers": "authorization,x-retry-count"})
    assert retried.headers["access-control-allow-headers"] == "authorization,x-retry-count"
    telemetry = await ingest.post("/v1/m", content=b"{}", headers={"origin": SHOP})
    assert (telemetry.status_code, telemetry.headers["access-control-allow-origin"]) == (204, SHOP)
    refused = await ingest.options("/v1/batch", headers={"origin": "https://evil.example", **asked})
    assert (refused.status_code, refused.json()["code"]) == (403, "origin_not_allowed")
    assert "access-control-allow-origin" not in refused.headers


async def test_an_origin_the_keys_source_does_not_list_is_a_403(ingest):
    response = await ingest.post("/v1/track", json=make_touchpoint(), auth=(ingest.write_key, ""),
                                 headers={"origin": "https://evil.example"})
    assert (response.status_code, response.json()["code"]) == (403, "origin_not_allowed")
    assert "access-control-allow-origin" not in response.headers


async def test_a_write_key_cannot_send_events_that_move_money_or_points(ingest):
    money = [make_touchpoint(event=name, userId="u-forger", properties={"order_id": "o1", "revenue": 10})
             for name in ("Order Completed", "Order Refunded", "Referral Completed")]
    for event in money:
        single = await ingest.post("/v1/track", json=event, auth=(ingest.write_key, ""))
        assert (single.status_code, single.json()["code"]) == (403, "server_key_required"), single.text
        assert "server key" in single.json()["message"]
    harmless = make_touchpoint(userId="u-forger")
    batch = await ingest.post("/v1/batch", json={"batch": [harmless, *money]}, auth=(ingest.write_key, ""))
    assert (batch.status_code, batch.json()["code"], batch.json()["accepted"]) == (403, "partially_rejected", 1)
    assert [(r["index"], r["status"]) for r in batch.json()["rejected"]] == [(1, 403), (2, 403), (3, 403)]
    by_server = await ingest.post("/v1/batch", json={"batch": money}, auth=(ingest.server_key, ""))
    assert by_server.status_code == 200, by_server.text


async def test_a_key_in_an_item_other_than_the_requests_is_refused_for_that_item(ingest):
    items = [make_touchpoint(), make_touchpoint(writeKey="lc_wk_someone-else")]
    response = await ingest.post("/v1/batch", json={"batch": items}, auth=(ingest.server_key, ""))
    assert (response.status_code, response.json()["rejected"][0]["index"]) == (401, 1)


async def test_over_the_rate_a_key_gets_429_with_retry_after_and_ratelimit_headers(namespace):
    async with running(create_app(settings_for(namespace, rate_limit_events_per_s=1.0, rate_limit_burst=2500))) as c:
        key = (await c.post("/v1/admin/keys", json={"source": "limited", "kind": "server"}, headers=ADMIN)).json()
        auth = (key["key"], "")
        first = await c.post("/v1/batch", json={"batch": [make_touchpoint() for _ in range(2400)]}, auth=auth)
        assert first.status_code == 200 and int(first.headers["ratelimit-remaining"]) <= 100
        assert first.headers["ratelimit-limit"] == "2500"
        limited = await c.post("/v1/batch", json={"batch": [make_touchpoint() for _ in range(200)]}, auth=auth)
        assert (limited.status_code, limited.json()["code"]) == (429, "rate_limited")
        assert 90 <= int(limited.headers["retry-after"]) <= 200
        assert int(limited.headers["ratelimit-reset"]) >= int(limited.headers["retry-after"])
        other = (await c.post("/v1/admin/keys", json={"source": "limited"}, headers=ADMIN)).json()["key"]
        assert (await c.post("/v1/track", json=make_touchpoint(), auth=(other, ""))).status_code == 200


async def test_traceparent_is_carried_onto_the_record_and_the_request_id_echoed(ingest, namespace):
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = make_touchpoint()
    response = await ingest.post("/v1/track", json=event, auth=(ingest.server_key, ""),
                                 headers={"traceparent": traceparent, "x-request-id": "req-42"})
    assert (response.status_code, response.headers["x-request-id"]) == (200, "req-42")
    record = await _published(namespace, event["messageId"])
    assert (b"traceparent", traceparent.encode()) in [(k.encode(), v) for k, v in record.headers]
    bad = make_touchpoint()
    response = await ingest.post("/v1/track", json=bad, auth=(ingest.server_key, ""),
                                 headers={"traceparent": "not-a-trace"})
    assert response.status_code == 200 and len(response.headers["x-request-id"]) == 32  # one given
    assert "traceparent" not in [k for k, _ in (await _published(namespace, bad["messageId"])).headers]


async def test_group_traits_are_carried_as_the_groups(ingest, namespace):
    group = make_touchpoint(type="group", event=None, userId=f"u-{uuid.uuid4().hex[:6]}", groupId="acme",
                            traits={"name": "Acme Inc", "employees": 40})
    assert (await ingest.post("/v1/group", json=group, auth=(ingest.server_key, ""))).status_code == 200
    data = json.loads((await _published(namespace, group["messageId"])).value)["data"]
    assert (data["groupId"], data["traits"]["name"]) == ("acme", "Acme Inc")


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/track", 405), ("POST", "/v1/nope", 404), ("DELETE", "/v1/admin/keys/not-a-uuid", 400)])
async def test_routing_errors_answer_with_code_and_message(ingest, method, path, status):
    response = await ingest.request(method, path, headers=ADMIN)
    assert response.status_code == status
    assert set(response.json()) >= {"code", "message"} and response.json()["success"] is False


async def test_beyond_the_requests_in_progress_limit_ingest_answers_503_at_once(namespace, own_broker):
    """Overload is answered quickly: with the broker stalled, requests beyond the limit get a 503 with
    Retry-After at once, while the ones within it wait for the broker."""
    broker, proxy = own_broker
    await proxy.start()
    async with running(create_app(settings_on(namespace, broker, max_inflight_requests=2))) as client:
        key = (await client.post("/v1/admin/keys", json={"source": "busy", "kind": "server"}, headers=ADMIN)).json()
        auth = (key["key"], "")
        assert (await client.post("/v1/track", json=make_touchpoint(), auth=auth)).status_code == 200
        proxy.stall()
        held = [asyncio.create_task(client.post("/v1/track", json=make_touchpoint(), auth=auth)) for _ in range(2)]
        await asyncio.sleep(0.3)
        started = time.monotonic()
        refused = await client.post("/v1/track", json=make_touchpoint(), auth=auth)
        assert (refused.status_code, refused.json()["code"], refused.headers["retry-after"]) == (503, "overloaded", "1")
        assert time.monotonic() - started < 0.5 and "x-request-id" in refused.headers
        proxy.resume()
        assert {(await task).status_code for task in held} <= {200, 503}


async def test_a_body_that_does_not_arrive_in_time_is_a_408_and_holds_no_slot(namespace):
    async with running(create_app(settings_for(namespace, body_timeout_s=0.5, max_inflight_requests=1))) as client:
        key = (await client.post("/v1/admin/keys", json={"source": "slow", "kind": "server"}, headers=ADMIN)).json()

        async def never_finished():
            yield b'{"type": "track", '
            await asyncio.sleep(30)

        slow = asyncio.create_task(client.post("/v1/track", content=never_finished(), auth=(key["key"], "")))
        await asyncio.sleep(0.1)
        assert (await client.post("/v1/track", json=make_touchpoint(), auth=(key["key"], ""))).status_code == 200
        assert ((await slow).status_code, (await slow).json()["code"]) == (408, "request_timeout")


@pytest.mark.parametrize("headers", [{"authorization": b"Basic \xe9"}, {"authorization": b"Basic !!!"}])
async def test_an_unreadable_basic_header_is_a_401(ingest, headers):
    response = await ingest.post("/v1/track", json=make_touchpoint(), headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


async def test_a_key_with_a_lone_surrogate_is_a_401_not_a_500(ingest):
    body = b'{"type": "track", "event": "X", "anonymousId": "a", "writeKey": "lc_wk_\\ud800"}'
    assert (await ingest.post("/v1/t", content=body)).status_code == 401
    batch = b'{"batch": [{"type": "page", "anonymousId": "a", "writeKey": "lc_sk_\\udfff"}]}'
    assert (await ingest.post("/v1/b", content=batch)).status_code == 401


async def test_a_write_key_cannot_pre_empt_a_server_key_event_by_its_message_id(ingest, namespace):
    shared_id = f"order-{uuid.uuid4().hex[:8]}"
    page = make_touchpoint(type="page", event=None, name="Home", messageId=shared_id)
    order = make_touchpoint(event="Order Completed", userId="u-victim", messageId=shared_id,
                            properties={"order_id": shared_id, "revenue": 50})
    assert (await ingest.post("/v1/page", json=page, auth=(ingest.write_key, ""))).status_code == 200
    assert (await ingest.post("/v1/track", json=order, auth=(ingest.server_key, ""))).status_code == 200
    records = await read_topic(namespace.kafka_bootstrap, namespace.topic_prefix + "touchpoints.v1",
                               until=lambda r: json.loads(r.value)["type"] == "touchpoint.order_completed"
                               and json.loads(r.value)["data"]["messageId"] == shared_id)
    ids = {json.loads(r.value)["id"] for r in records if json.loads(r.value)["data"]["messageId"] == shared_id}
    assert ids == {f"contract+write/{shared_id}", f"contract/{shared_id}"}


async def test_two_events_with_one_message_id_in_a_batch_the_second_is_refused_an_exact_repeat_is_not(ingest):
    first = make_touchpoint(messageId="dup-1", properties={"sku": "a"})
    other = {**first, "properties": {"sku": "b"}}
    response = await ingest.post("/v1/batch", json={"batch": [first, dict(first), other]}, auth=(ingest.server_key, ""))
    assert (response.status_code, response.json()["accepted"]) == (400, 2)
    assert [(r["index"], r["errors"][0]["field"]) for r in response.json()["rejected"]] == [(2, "messageId")]


async def test_a_refused_message_id_that_cannot_be_echoed_is_left_out_not_a_500(ingest):
    body = b'{"type": "track", "event": "X", "userId": "u", "messageId": "\\ud800"}'
    response = await ingest.post("/v1/track", content=body, auth=(ingest.server_key, ""))
    assert (response.status_code, response.json()["messageId"]) == (400, None)


async def test_refusals_of_mixed_kinds_with_nothing_accepted_are_a_400_invalid_request(ingest):
    items = [make_touchpoint(event="Order Completed", userId="u"), {"type": "track", "event": "X"}]
    response = await ingest.post("/v1/batch", json={"batch": items}, auth=(ingest.write_key, ""))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    assert [r["status"] for r in response.json()["rejected"]] == [403, 400]
