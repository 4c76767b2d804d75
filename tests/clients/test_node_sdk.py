"""@segment/analytics-node (installed from the lock file in tests/clients/node) against ingest: every call
type, then closeAndFlush(); plain, and gzip through the library's `httpClient` hook (it has no gzip option
of its own); nothing reported as an error, every event on the touchpoints topic, the profile shows them."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid

import pytest

from tests.support.client_libraries import (
    GROUP_NAME,
    NODE_DIR,
    PERSON_NAME,
    assert_person_profile,
    profile_when,
    published,
)


def run_node(spec: dict) -> dict:
    node = shutil.which("node")
    assert node, "Node.js 20+ is needed for @segment/analytics-node"
    result = subprocess.run([node, "send-events.js", json.dumps(spec)], cwd=NODE_DIR, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip(), f"node failed: {result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
async def test_analytics_node_events_reach_the_profile(clients_stack, server_key, node_modules, gzip):
    user, visitor = f"node-{uuid.uuid4().hex[:8]}", f"anon-{uuid.uuid4().hex[:10]}"
    report = await asyncio.to_thread(run_node, {
        "host": clients_stack.url("ingest"), "writeKey": server_key, "userId": user, "anonymousId": visitor,
        "groupId": f"{user}-company", "gzip": gzip, "personName": PERSON_NAME, "groupName": GROUP_NAME,
        "tag": user})

    assert "fatal" not in report, report
    assert report["errors"] == [], report["errors"]
    assert [c for c in report["callbacks"] if c["error"]] == [], report["callbacks"]
    exchanges = report["exchanges"]
    assert exchanges and all(e["status"] == 200 for e in exchanges), exchanges
    assert all(not json.loads(e["responseBody"]).get("rejected") for e in exchanges), exchanges
    assert all(e["url"].endswith("/v1/batch") for e in exchanges)
    assert all((e["requestHeaders"].get("Content-Encoding") == "gzip") == gzip for e in exchanges)
    sent = {item["messageId"]: item for e in exchanges for item in e["requestBody"]["batch"]}
    assert sorted(item["type"] for item in sent.values()) == sorted(
        ["page", "track", "identify", "alias", "group", "screen", "track"])

    touchpoints = (await published(clients_stack, set(sent))).by_message_id
    for message_id, item in sent.items():
        touchpoint = touchpoints[message_id]
        assert touchpoint["type"] == item["type"]
        if item["type"] in ("page", "screen"):
            assert touchpoint["category"] == item["category"] and touchpoint["name"] == item["name"]
        if item["type"] == "group":
            assert touchpoint["traits"]["name"] == GROUP_NAME

    profile = await profile_when(clients_stack, user, lambda p: p["orders"] == 1 and p["traits"].get("email"),
                                 what=f"{user}'s order and traits")
    assert_person_profile(profile, user_id=user, anonymous_id=visitor, email=f"{user}@example.com",
                          stage="purchase", orders=1, revenue=42.5)
