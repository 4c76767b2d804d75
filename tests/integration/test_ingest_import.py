"""Historical imports against the real ingest app, PostgreSQL and broker: the import CLI posts NDJSON and
CSV files to `/v1/import`, whose events are published `historical: true`; every other path publishes
`historical: false`, whatever the client sent; a re-run is a retry; refusals are reported by line."""

from __future__ import annotations

import io
import json
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from lifecycle_devstack.ports import free_port
from lifecycle_ingest.api.routes import events
from lifecycle_ingest.importer import RetryPolicy, run
from lifecycle_ingest.main import create_app
from lifecycle_shared.testing import eventually, make_touchpoint, read_topic

from tests.support.in_process import running
from tests.support.ingest import ADMIN_TOKEN, settings_for

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
FAST = RetryPolicy(attempts=3, first_s=0.01, longest_s=0.05)


async def _with_keys(client: httpx.AsyncClient, app, source: str) -> httpx.AsyncClient:
    client.app = app
    for kind in ("server", "write"):
        response = await client.post("/v1/admin/keys", json={"source": source, "kind": kind}, headers=ADMIN)
        setattr(client, f"{kind}_key", response.json()["key"])
    return client


@pytest.fixture(scope="module")
async def ingest(namespace):
    app = create_app(settings_for(namespace))
    async with running(app) as client:
        yield await _with_keys(client, app, "history")


async def _import(ingest, path: Path, *options: str, key: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await run([str(path), "--url", "http://service", "--write-key", key or ingest.server_key, *options],
                       transport=httpx.ASGITransport(app=ingest.app), retry=FAST, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


async def _published(namespace, subject: str, count: int) -> list[dict[str, Any]]:
    """The CloudEvents about `subject` (a customer key) on the touchpoints topic, once there are `count`."""
    async def probe() -> list[dict[str, Any]] | None:
        records = await read_topic(namespace.kafka_bootstrap, namespace.topic_prefix + "touchpoints.v1")
        ours = [event for event in map(json.loads, (r.value for r in records)) if event["subject"] == subject]
        return ours if len(ours) >= count else None
    return await eventually(probe, timeout_s=30, what=f"{count} events about {subject}")


def _ndjson(path: Path, calls: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in calls), encoding="utf-8")
    return path


def _user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


async def test_an_ndjson_import_is_published_historical_and_each_event_keeps_its_own_time(ingest, namespace, tmp_path):
    user = _user()
    path = _ndjson(tmp_path / "history.ndjson", [
        # As Segment exports it: the original delivery's sentAt would otherwise move the event to today.
        {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"},
         "originalTimestamp": "2019-03-01T10:00:00Z", "sentAt": "2019-03-01T10:00:02Z"},
        {"type": "track", "event": "Order Completed", "userId": user, "messageId": f"{user}-o1",
         "properties": {"order_id": f"{user}-o1", "revenue": 42.5}, "timestamp": "2019-03-02T10:00:00Z"},
        {"type": "page", "userId": user, "name": "Home", "timestamp": "2019-03-03T10:00:00Z"},
    ])
    status, out, _ = await _import(ingest, path)
    assert (status, out) == (0, "3 lines: sent 3, accepted 3, refused 0\n")
    published = await _published(namespace, user, 3)
    assert [event["data"]["historical"] for event in published] == [True, True, True]
    assert sorted(event["time"][:10] for event in published) == ["2019-03-01", "2019-03-02", "2019-03-03"]
    ids = {event["data"]["messageId"] for event in published}
    assert f"{user}-o1" in ids and all(i.startswith("import-") for i in ids - {f"{user}-o1"})


async def test_a_csv_import_maps_its_columns_and_is_published_historical(ingest, namespace, tmp_path):
    user = _user()
    path = tmp_path / "orders.csv"
    path.write_text("type,event,userId,anonymousId,messageId,timestamp,properties.order_id,properties.revenue,"
                    "traits.plan\n"
                    f"identify,,{user},,,2020-01-01T09:00:00Z,,,gold\n"
                    f"track,Order Completed,{user},a-{user},{user}-csv1,2020-01-02T09:00:00Z,1001,19.90,\n",
                    encoding="utf-8")
    status, out, _ = await _import(ingest, path)
    assert (status, out) == (0, "2 lines: sent 2, accepted 2, refused 0\n")
    identify, order = sorted(await _published(namespace, user, 2), key=lambda event: event["time"])
    assert identify["data"]["traits"] == {"plan": "gold"} and "anonymousId" not in identify["data"]
    assert order["data"]["properties"] == {"order_id": 1001, "revenue": 19.9}
    assert (order["type"], order["id"], order["data"]["anonymousId"]) == (
        "touchpoint.order_completed", f"history/{user}-csv1", f"a-{user}")
    assert identify["data"]["historical"] is order["data"]["historical"] is True


async def test_other_paths_publish_live_events_whatever_the_client_says_and_a_live_event_reimported_is_a_retry(
        ingest, namespace):
    user = _user()
    auth = (ingest.server_key, "")
    plain = make_touchpoint(userId=user, timestamp="2021-05-01T10:00:00Z")
    claims = make_touchpoint(userId=user, historical=True)
    assert (await ingest.post("/v1/batch", json={"batch": [plain, claims]}, auth=auth)).status_code == 200
    single = make_touchpoint(userId=user, historical=True)
    assert (await ingest.post("/v1/track", json=single, auth=auth)).status_code == 200
    denies = make_touchpoint(userId=user, historical=False)
    assert (await ingest.post("/v1/import", json={"batch": [denies, plain]}, auth=auth)).status_code == 200
    published = await _published(namespace, user, 5)
    flags = [(event["data"]["messageId"], event["data"]["historical"]) for event in published]
    assert flags == [(plain["messageId"], False), (claims["messageId"], False), (single["messageId"], False),
                     (denies["messageId"], True), (plain["messageId"], True)]
    # The same event live and then imported: one id, one digest - applied once downstream, not a reused id.
    live, imported = [event for event in published if event["data"]["messageId"] == plain["messageId"]]
    assert (live["id"], live["digest"]) == (imported["id"], imported["digest"])


async def test_running_the_same_import_again_publishes_the_same_ids_and_digests(ingest, namespace, tmp_path):
    user = _user()
    path = _ndjson(tmp_path / "again.ndjson", [
        {"type": "track", "event": "Product Viewed", "userId": user, "timestamp": "2018-06-01T08:00:00Z"},
        {"type": "track", "event": "Product Viewed", "userId": user, "properties": {"sku": "s-2"}},
        {"type": "identify", "userId": user, "messageId": f"{user}-id", "traits": {"plan": "gold"}},
    ])
    assert (await _import(ingest, path))[0] == 0
    first = await _published(namespace, user, 3)
    assert (await _import(ingest, path))[0] == 0
    both = await _published(namespace, user, 6)
    digests: dict[str, set[str]] = defaultdict(set)
    for event in both:
        digests[event["id"]].add(event["digest"])
    # Ingest publishes a retry again; consumers apply each id once (same id and digest: a retry).
    assert set(digests) == {event["id"] for event in first} and len(digests) == 3
    assert all(len(digest) == 1 for digest in digests.values())


async def test_a_refused_line_is_reported_by_number_and_code_without_personal_data_and_the_rest_is_accepted(
        ingest, namespace, tmp_path):
    user = _user()
    email = f"{user}@example.com"
    path = _ndjson(tmp_path / "mixed.ndjson", [
        {"type": "page", "userId": user, "name": "Home"},
        '{"type": "identify", "userId": "' + user + '", ',
        {"type": "identify", "traits": {"email": email}},
        {"type": "track", "event": "Order Completed", "userId": user, "properties": {"order_id": "o-9", "revenue": 5}},
        {"type": "track", "event": "Signed Up", "userId": user, "context": {"traits": {"email": email}}},
    ])
    status, out, _ = await _import(ingest, path, "--batch-size", "2", key=ingest.write_key)
    assert status == 1
    assert out.splitlines() == [
        "line 2: refused, not sent (invalid_json: not valid JSON)",
        "line 3: refused (400 invalid_request: userId)",
        "line 4: refused (403 server_key_required: event)",
        "5 lines: sent 4, accepted 2, refused 3",
    ]
    assert user not in out and email not in out
    published = await _published(namespace, user, 2)
    assert sorted(event["type"] for event in published) == ["touchpoint.page_viewed", "touchpoint.signed_up"]


async def test_a_rate_limited_import_waits_as_ingest_says_and_goes_on(namespace, tmp_path):
    app = create_app(settings_for(namespace, rate_limit_events_per_s=2.0, rate_limit_burst=2, max_batch_events=2))
    async with running(app) as client:
        limited = await _with_keys(client, app, "history-limited")
        user = _user()
        path = _ndjson(tmp_path / "burst.ndjson", [make_touchpoint(userId=user) for _ in range(4)])
        status, out, err = await _import(limited, path, "--batch-size", "2")
    assert (status, out) == (0, "4 lines: sent 4, accepted 4, refused 0\n")
    assert "ingest answered 429 rate_limited; retrying in 1.0 s" in err
    assert len(await _published(namespace, user, 4)) == 4


async def test_an_import_stops_where_ingest_cannot_be_reached_or_refuses_the_key(ingest, tmp_path):
    path = _ndjson(tmp_path / "stop.ndjson", [make_touchpoint(userId=_user()) for _ in range(3)])
    out = io.StringIO()
    status = await run([str(path), "--url", f"http://127.0.0.1:{free_port()}", "--write-key", "lc_sk_x"],
                       retry=FAST, out=out, err=io.StringIO())
    assert (status, out.getvalue()) == (1, "3 lines: sent 3, accepted 0, refused 0, not delivered 3; stopped: "
                                           "connection failed (ConnectError), 3 attempts, at line 1: the lines "
                                           "from there on were not imported\n")
    status, out, _ = await _import(ingest, path, key="lc_sk_unknown")
    assert status == 1 and out.endswith("stopped: ingest refused the key (401 unauthorized), at line 1: the lines "
                                        "from there on were not imported\n")
    status, out, _ = await _import(ingest, path, "--url", "http://service/v1")
    assert status == 1 and "stopped: no ingest at this URL (404 on /v1/import)" in out


def test_the_router_and_the_event_lane_serve_each_event_path_from_one_table():
    """The lane serves POSTs from `events.BY_PATH`; the router is generated from the same `events.ENDPOINTS`:
    each path documented once, its aliases served undocumented, `/v1/import` alone historical."""
    routed = {route.path: route for route in events.router.routes if "POST" in route.methods}
    assert set(routed) == {*events.BY_PATH, "/v1/m"}
    assert {path for path, route in routed.items() if route.include_in_schema} == {
        endpoint.path for endpoint in events.ENDPOINTS}
    assert all(routed[path].name == endpoint.name for path, endpoint in events.BY_PATH.items())
    assert {path for path, endpoint in events.BY_PATH.items() if endpoint.historical} == {"/v1/import"}
