"""The webhooks admin API in-process against real PostgreSQL: register (secret shown once), rotate, pause,
resume, delete, the delivery log and replays; bad input is a 4xx naming the problem, declared in OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db import webhooks as db
from lifecycle_messaging.domain.webhooks import webhook_id
from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_shared.db import create_engine

from tests.support.in_process import kafka_settings, running

ADMIN = "messaging-admin-token-3f9a1c0b7e5d"
AUTH = {"authorization": f"Bearer {ADMIN}"}
BASE = "/v1/admin/webhooks"


@pytest.fixture(scope="module")
def namespace(infra):
    config = infra.stack_config()
    infra.prepare(config, services=[BY_NAME["messaging"]])
    return config


def settings_for(namespace, **overrides) -> MessagingSettings:
    return MessagingSettings(**{"environment": "production", "role": "api", "admin_token": ADMIN,
                                "api_tokens": "read-api-token-0c5e8b1a7f3d9", "kafka": kafka_settings(namespace),
                                "unsubscribe_secret": "unsubscribe-secret-4b9e2d7c1a08f3", "public_url": "https://shop.example",
                                "database_url": namespace.database_url(BY_NAME["messaging"]), **overrides})


@pytest.fixture(scope="module")
async def client(namespace):
    async with running(create_app(settings_for(namespace))) as client:
        yield client


async def register(client, **fields):
    body = {"url": "https://hooks.example.com/in", "event_types": ["lifecycle.stage_changed"], **fields}
    return await client.post(BASE, json=body, headers=AUTH)


async def test_registering_answers_the_secret_once_and_never_again(client):
    answer = await register(client, stages=["purchase", "loyalty"], description="CRM sync")
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["secret"].startswith("whsec_") and created["status"] == "active"
    assert created["stages"] == ["purchase", "loyalty"] and created["description"] == "CRM sync"
    shown = (await client.get(f"{BASE}/{created['id']}", headers=AUTH)).json()
    assert "secret" not in shown and shown["id"] == created["id"]
    listed = (await client.get(BASE, headers=AUTH)).json()
    assert created["id"] in [e["id"] for e in listed] and all("secret" not in e for e in listed)


async def test_rotate_pause_resume_delete(client):
    endpoint = (await register(client)).json()
    path = f"{BASE}/{endpoint['id']}"
    rotated = await client.post(f"{path}/rotate-secret", json={"overlap_s": 3600}, headers=AUTH)
    assert rotated.status_code == 200 and rotated.json()["secret"] != endpoint["secret"]
    assert (await client.get(path, headers=AUTH)).json()["previous_secret_until"] is not None
    assert (await client.post(f"{path}/rotate-secret", headers=AUTH)).status_code == 200  # the body is optional
    assert (await client.post(f"{path}/pause", headers=AUTH)).json()["status"] == "paused"
    assert (await client.post(f"{path}/resume", headers=AUTH)).json()["status"] == "active"
    assert (await client.get(f"{path}/deliveries", headers=AUTH)).json() == []
    replayed = await client.post(f"{path}/replay", json={"since": "2026-01-01T00:00:00Z"}, headers=AUTH)
    assert replayed.json() == {"replayed": 0}
    assert (await client.delete(path, headers=AUTH)).status_code == 204
    assert (await client.get(path, headers=AUTH)).status_code == 404
    assert (await client.delete(path, headers=AUTH)).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "http://hooks.example.com/in"}, "url"),  # production: https only
    ({"url": "https://127.0.0.1/in"}, "url"),
    ({"url": "https://169.254.169.254/latest/meta-data"}, "url"),
    ({"url": "https://[::1]/in"}, "url"),
    ({"url": "https://10.0.0.1/in"}, "url"),
    ({"event_types": []}, "event_types"),
    ({"event_types": ["touchpoint.order_completed"]}, "event_types"),
    ({"stages": ["nowhere"]}, "stages"),
    ({"description": "a\u0000b"}, "description"),
    ({"secret": "whsec_mine"}, "secret"),  # we choose the secret
])
async def test_bad_input_is_a_400_naming_the_field(client, body, field):
    answer = await register(client, **body)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["message"]


async def test_unknown_ids_are_404_malformed_ones_400_and_no_token_401(client):
    missing = f"{BASE}/ep_{'0' * 32}"
    assert (await client.get(missing, headers=AUTH)).status_code == 404
    assert (await client.post(f"{missing}/deliveries/1/replay", headers=AUTH)).status_code == 404
    assert (await client.get(f"{BASE}/nope", headers=AUTH)).status_code == 400
    assert (await client.get(BASE)).status_code == 401
    bad_since = await client.post(f"{missing}/replay", json={"since": "2026-01-01T00:00:00"}, headers=AUTH)
    assert bad_since.status_code == 400 and "since" in bad_since.json()["message"]


async def test_every_route_declares_its_4xx_in_openapi(client):
    schema = (await client.get("/openapi.json")).json()
    operations = [(path, op) for path, ops in schema["paths"].items() if path.startswith(BASE) for op in ops.values()]
    assert len(operations) == 10
    for path, operation in operations:
        declared = set(operation["responses"])
        assert {"401", "403", "404"} <= declared, (path, declared)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "400" in declared, (path, declared)
        assert "422" not in declared


async def test_development_allows_a_local_http_receiver(namespace):
    async with running(create_app(settings_for(namespace, environment="development"))) as dev:
        answer = await register(dev, url="http://127.0.0.1:9/hook")
        assert answer.status_code == 201, answer.text


async def test_the_delivery_log_pages_filters_and_replays(client, namespace):
    endpoint = (await register(client)).json()
    path = f"{BASE}/{endpoint['id']}"
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    try:
        async with engine.begin() as conn:
            await db.add_deliveries(conn, [{
                "webhook_id": webhook_id(endpoint["id"], f"event-{n}"), "endpoint_id": endpoint["id"],
                "event_id": f"event-{n}", "event_type": "lifecycle.stage_changed",
                "event_time": datetime(2026, 5, 1, tzinfo=UTC), "payload": b"{}"} for n in range(3)])
    finally:
        await engine.dispose()
    log = (await client.get(f"{path}/deliveries", headers=AUTH)).json()
    assert [d["event_id"] for d in log] == ["event-2", "event-1", "event-0"]  # newest first
    assert all(d["status"] == "pending" and d["attempts"] == 0 and "payload" not in d for d in log)
    page = (await client.get(f"{path}/deliveries", params={"before": log[0]["id"], "limit": 1}, headers=AUTH)).json()
    assert [d["event_id"] for d in page] == ["event-1"]
    assert (await client.get(f"{path}/deliveries", params={"status": "delivered"}, headers=AUTH)).json() == []
    assert (await client.get(f"{path}/deliveries", params={"status": "lost"}, headers=AUTH)).status_code == 400
    replayed = await client.post(f"{path}/deliveries/{log[1]['id']}/replay", headers=AUTH)
    assert replayed.status_code == 200 and replayed.json()["webhook_id"] == log[1]["webhook_id"]
    since = await client.post(f"{path}/replay", json={"since": "2000-01-01T00:00:00+00:00"}, headers=AUTH)
    assert since.json() == {"replayed": 3}
    only_failed = await client.post(f"{path}/replay", json={"since": "2000-01-01T00:00:00Z", "only_failed": True},
                                    headers=AUTH)
    assert only_failed.json() == {"replayed": 0}
    other = (await register(client)).json()  # a delivery is replayed only under its own endpoint
    assert (await client.post(f"{BASE}/{other['id']}/deliveries/{log[1]['id']}/replay",
                              headers=AUTH)).status_code == 404
