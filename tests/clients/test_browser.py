"""The analytics-next bundle (npm @segment/analytics-next, UMD build served locally, no CDN) in headless
Chromium driven by Playwright, against ingest from an allowed origin with a write key: every call, in its
default per-event mode (Segment's short paths /v1/p|t|a|i|g, text/plain, writeKey in the body), its
batching mode (/v1/b) and with fetch keepalive (what it uses instead of sendBeacon). RudderStack's browser
SDK v3 (npm @rudderstack/analytics-js, bundled build served locally, source config inline) the same way:
JSON to /v1/<type> with the write key in the Basic header, `userId: ""` on anonymous events. Every request
the page makes is recorded: only our two local servers are reached, ingest answers 200 with CORS for the
origin, every event is on the touchpoints topic and the customer's profile shows them."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.browser import RUDDERSTACK_SCENARIO, posted_events, run_scenario
from tests.support.client_libraries import GROUP_NAME, PERSON_NAME, assert_person_profile, profile_when, published

SHORT_PATHS = {"page": "/v1/p", "track": "/v1/t", "alias": "/v1/a", "identify": "/v1/i", "group": "/v1/g"}
MODES = {
    "per-event": (None, 5),
    "batching": ({"strategy": "batching", "config": {"size": 5, "timeout": 300}}, 1),
    "keepalive": ({"strategy": "standard", "config": {"keepalive": True}}, 5),
}


def scenario(stack, write_key: str, user: str, strategy: dict | None, requests: int, **extra) -> dict:
    ingest = stack.url("ingest")
    return {"writeKey": write_key, "apiHost": ingest.removeprefix("http://") + "/v1", "deliveryStrategy": strategy,
            "userId": user, "email": f"{user}@example.com", "personName": PERSON_NAME, "groupId": f"{user}-company",
            "groupName": GROUP_NAME, "tag": user, "expectRequests": requests, **extra}


def assert_only_local_traffic(run, site: str, ingest: str) -> None:
    strays = [r.url for r in run.requests if not (r.url.startswith(site + "/") or r.url.startswith(ingest + "/"))]
    assert strays == [], f"the page reached beyond our servers: {strays}"
    assert [r.url for r in run.requests if r.url.startswith(site) and r.status != 200] == []


def assert_cors(exchange, site: str) -> None:
    headers = exchange.response_headers
    assert headers.get("access-control-allow-origin") == site, (exchange.url, headers)
    assert "access-control-allow-credentials" not in headers, (exchange.url, headers)


@pytest.mark.parametrize("mode", list(MODES))
async def test_analytics_next_in_chromium_reaches_the_profile(clients_stack, browser_write_key, chromium, web_site,
                                                              mode):
    strategy, requests = MODES[mode]
    ingest, user = clients_stack.url("ingest"), f"web-{mode}-{uuid.uuid4().hex[:8]}"
    run = await run_scenario(chromium, web_site, scenario(clients_stack, browser_write_key, user, strategy, requests),
                             api_origin=ingest)
    result = run.result
    assert result["errors"] == [] and [c for c in result["calls"] if c["failed"]] == [], (result, run.console)

    assert_only_local_traffic(run, web_site, ingest)
    api = run.to(ingest)
    assert api, run.requests
    for exchange in api:
        assert exchange.method == "POST" and exchange.status == 200, (exchange.url, exchange.status)
        assert exchange.request_headers.get("content-type") == "text/plain"
        assert_cors(exchange, web_site)
    events = posted_events(run, ingest)
    if strategy and strategy["strategy"] == "batching":
        assert {path for path, _ in events} == {"/v1/b"}
    else:
        assert [path for path, _ in events] == [SHORT_PATHS[event["type"]] for _, event in events]
    assert all(event["writeKey"] == browser_write_key for _, event in events)
    sent = {event["messageId"]: event for _, event in events}
    assert set(sent) == {call["messageId"] for call in result["calls"]}

    touchpoints = (await published(clients_stack, set(sent))).by_message_id
    page = next(t for t in touchpoints.values() if t["type"] == "page")
    assert page["category"] == "Docs" and page["name"] == "Getting Started"
    group = next(t for t in touchpoints.values() if t["type"] == "group")
    assert group["traits"]["name"] == GROUP_NAME

    profile = await profile_when(clients_stack, user, lambda p: p["traits"].get("email") and p["stage"],
                                 what=f"{user}'s traits")
    assert_person_profile(profile, user_id=user, anonymous_id=result["anonymousId"], email=f"{user}@example.com",
                          stage="consideration", orders=0)


async def test_browser_order_with_a_write_key_is_refused(clients_stack, browser_write_key, chromium, web_site):
    """Orders move money and points: from a browser (a write key) ingest refuses one with a 403 the page can
    read (CORS headers on errors too), analytics-next reports the failed delivery, and no order is counted."""
    ingest, user = clients_stack.url("ingest"), f"web-order-{uuid.uuid4().hex[:8]}"
    order = {"event": "Order Completed", "properties": {"order_id": f"{user}-o1", "revenue": 99.0}}
    run = await run_scenario(chromium, web_site, scenario(clients_stack, browser_write_key, user, None, 6,
                                                          extraTracks=[order]), api_origin=ingest)
    calls = run.result["calls"]
    assert [c["type"] for c in calls if c["failed"]] == ["track"] and calls[-1]["failed"], calls
    assert_only_local_traffic(run, web_site, ingest)
    api = run.to(ingest)
    refused = [e for e in api if json.loads(e.body).get("event") == "Order Completed"]
    assert [e.status for e in refused] == [403], [(e.url, e.status) for e in api]
    assert all(e.status == 200 for e in api if e not in refused)
    for exchange in api:
        assert_cors(exchange, web_site)

    accepted = {json.loads(e.body)["messageId"] for e in api if e not in refused}
    await published(clients_stack, accepted)
    profile = await profile_when(clients_stack, user, lambda p: p["traits"].get("email") and p["stage"],
                                 what=f"{user}'s traits")
    assert_person_profile(profile, user_id=user, anonymous_id=run.result["anonymousId"],
                          email=f"{user}@example.com", stage="consideration", orders=0)


async def test_rudderstack_js_in_chromium_reaches_the_profile(clients_stack, browser_write_key, chromium, web_site):
    """RudderStack's SDK sends `userId: ""` beside the anonymousId until identify: ingest takes it as absent,
    so the anonymous page view and track are accepted (before, they were a 400 the SDK dropped)."""
    ingest, user = clients_stack.url("ingest"), f"rs-{uuid.uuid4().hex[:8]}"
    config = {"writeKey": browser_write_key, "dataPlaneUrl": ingest, "userId": user, "email": f"{user}@example.com",
              "personName": PERSON_NAME, "groupId": f"{user}-company", "groupName": GROUP_NAME, "tag": user,
              "expectRequests": 5}
    run = await run_scenario(chromium, web_site, config, api_origin=ingest, page_path="/rudderstack.html",
                             script=RUDDERSTACK_SCENARIO)
    result = run.result
    assert result["errors"] == [] and [c["type"] for c in result["calls"]] == [
        "page", "track", "identify", "alias", "group"], (result, run.console)
    assert not [line for line in run.console if line.startswith(("error", "pageerror"))], run.console

    assert_only_local_traffic(run, web_site, ingest)
    api = run.to(ingest)
    assert [exchange.url.removeprefix(ingest) for exchange in api] == [
        "/v1/page", "/v1/track", "/v1/identify", "/v1/alias", "/v1/group"], [(e.url, e.status) for e in api]
    for exchange in api:
        assert exchange.method == "POST" and exchange.status == 200, (exchange.url, exchange.status, exchange.body)
        assert exchange.request_headers.get("content-type", "").startswith("application/json")
        assert exchange.request_headers.get("authorization", "").startswith("Basic ")
        assert_cors(exchange, web_site)
    events = posted_events(run, ingest)
    anonymous = [event for _, event in events if event["type"] in ("page", "track")]
    assert [event["userId"] for event in anonymous] == ["", ""], anonymous  # what the SDK sends before identify
    sent = {event["messageId"]: event for _, event in events}
    assert set(sent) == {call["messageId"] for call in result["calls"]}

    touchpoints = (await published(clients_stack, set(sent))).by_message_id
    page = next(t for t in touchpoints.values() if t["type"] == "page")
    assert page["category"] == "Docs" and page["name"] == "Getting Started"
    assert "userId" not in page and page["anonymousId"] == result["anonymousId"], page
    alias = next(t for t in touchpoints.values() if t["type"] == "alias")
    assert (alias["previousId"], alias["userId"]) == (result["anonymousId"], user), alias
    group = next(t for t in touchpoints.values() if t["type"] == "group")
    assert group["traits"]["name"] == GROUP_NAME

    profile = await profile_when(clients_stack, user, lambda p: p["traits"].get("email") and p["stage"],
                                 what=f"{user}'s traits")
    assert_person_profile(profile, user_id=user, anonymous_id=result["anonymousId"], email=f"{user}@example.com",
                          stage="consideration", orders=0)
