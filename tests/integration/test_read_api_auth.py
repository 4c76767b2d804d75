"""The read APIs (profiles, messages, balances) answer only to a bearer token from
LIFECYCLE_API_TOKENS; the operational routes stay open. In-process apps (ASGI + lifespan) against
real PostgreSQL and the broker."""

from __future__ import annotations

import logging
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from lifecycle_devstack.services import BY_NAME
from lifecycle_ingest.publisher import to_cloud_event
from lifecycle_loyalty.main import create_app as loyalty_app
from lifecycle_loyalty.settings import LoyaltySettings
from lifecycle_messaging.main import create_app as messaging_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_shared.events import TouchpointData
from lifecycle_shared.testing import eventually
from lifecycle_stage_engine.main import create_app as stage_engine_app
from lifecycle_stage_engine.settings import StageEngineSettings

from tests.support.in_process import kafka_settings, running

# Two tokens configured at once: a rotation in progress (the old one still works, the new one already does).
OLD_TOKEN = "read-api-token-old-6e1b0c94f27d"
NEW_TOKEN = "read-api-token-new-a85f3d207c19"
APPS = {"stage-engine": (StageEngineSettings, stage_engine_app),
        "messaging": (MessagingSettings, messaging_app),
        "loyalty": (LoyaltySettings, loyalty_app)}
CUSTOMER = f"reader-{uuid.uuid4().hex[:8]}"
READ_ROUTES = [("stage-engine", f"/v1/customers/{CUSTOMER}"), ("stage-engine", f"/v1/customers/{CUSTOMER}/transitions"),
               ("messaging", f"/v1/customers/{CUSTOMER}/messages"), ("loyalty", f"/v1/customers/{CUSTOMER}/balance"),
               ("loyalty", f"/v1/customers/{CUSTOMER}/ledger")]
by_route = pytest.mark.parametrize(("service", "path"), READ_ROUTES, ids=[f"{s}{p.split(CUSTOMER)[1] or '/profile'}"
                                                                         for s, p in READ_ROUTES])
by_service = pytest.mark.parametrize("service", list(APPS))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def problem(response: httpx.Response) -> str:
    """The text naming the problem, in either error body shape ({"error"} or {"code", "message"})."""
    body = response.json()
    assert body.get("success") is False, body
    text = body.get("message") or body.get("error")
    assert isinstance(text, str) and text, body
    return text


@pytest.fixture(scope="module")
def namespace(infra):
    """Only the three services with read APIs: their databases and the topics."""
    config = infra.stack_config()
    infra.prepare(config, services=[BY_NAME[service] for service in APPS])
    return config


def settings_for(namespace, service: str, *, environment: str, tokens: str | None):
    settings_cls, _ = APPS[service]
    admin = {"admin_token": "admin-token-5e1f9a0c3b7d2e48"} if settings_cls.requires_admin_token else {}
    if settings_cls is MessagingSettings:  # its unsubscribe links' secret and public address
        admin |= {"unsubscribe_secret": "unsubscribe-secret-0c9d4e7a1b2f", "public_url": "https://shop.example"}
    return settings_cls(environment=environment, database_url=namespace.database_url(BY_NAME[service]),
                        kafka=kafka_settings(namespace), **({"api_tokens": tokens} if tokens is not None else {}),
                        **admin)


@pytest.fixture(scope="module")
async def clients(namespace):
    """The three services, as in production: both tokens configured (a rotation with overlap)."""
    async with AsyncExitStack() as stack:
        clients = {}
        for service, (_, create_app) in APPS.items():
            settings = settings_for(namespace, service, environment="production", tokens=f"{OLD_TOKEN}, {NEW_TOKEN}")
            clients[service] = await stack.enter_async_context(running(create_app(settings)))
        yield clients


@pytest.fixture(scope="module")
async def known_customer(namespace, clients):
    """CUSTOMER has a profile (so the stage engine's routes answer 200, not 404)."""
    producer = AIOKafkaProducer(bootstrap_servers=namespace.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        now = datetime.now(UTC)
        event = to_cloud_event(TouchpointData(type="track", event="Product Viewed", anonymousId=CUSTOMER,
                                              messageId=str(uuid.uuid4()), timestamp=now, receivedAt=now),
                               source="tests")
        await producer.send_and_wait(namespace.topic_prefix + "touchpoints.v1", event.to_bytes(),
                                     key=event.subject.encode())
    finally:
        await producer.stop()

    async def profile():
        response = await clients["stage-engine"].get(f"/v1/customers/{CUSTOMER}", headers=bearer(OLD_TOKEN))
        return response.json() if response.status_code == 200 else None

    return await eventually(profile, what="the reader's profile")


@by_route
@pytest.mark.parametrize("headers", [{}, bearer("read-api-token-wrong-0000000000"), bearer(""),
                                     bearer(OLD_TOKEN + "x"), bearer(OLD_TOKEN[:-1]),
                                     {"authorization": OLD_TOKEN}, {"authorization": f"Basic {OLD_TOKEN}"}],
                         ids=["none", "wrong", "empty", "longer", "shorter", "no-scheme", "basic"])
async def test_without_a_configured_token_a_read_route_answers_401(clients, service, path, headers, caplog):
    caplog.set_level(logging.DEBUG)
    response = await clients[service].get(path, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in problem(response)
    assert OLD_TOKEN[:-1] not in response.text + caplog.text  # neither echoed nor logged


@by_route
@pytest.mark.parametrize("token", [OLD_TOKEN, NEW_TOKEN], ids=["old", "new"])
async def test_either_configured_token_reads(clients, known_customer, service, path, token, caplog):
    caplog.set_level(logging.DEBUG)
    response = await clients[service].get(path, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert token not in caplog.text


async def test_the_token_reads_the_customers_data(clients, known_customer):
    assert known_customer["customer_id"] == CUSTOMER
    balance = await clients["loyalty"].get(f"/v1/customers/{CUSTOMER}/balance", headers=bearer(NEW_TOKEN))
    assert balance.json()["customer_id"] == CUSTOMER


async def test_the_token_is_checked_before_the_path(clients):
    """A caller without a token learns nothing, not even which ids are well-formed."""
    response = await clients["stage-engine"].get("/v1/customers/" + "x" * 201)
    assert response.status_code == 401


@by_service
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
async def test_operational_routes_stay_open(clients, service, path):
    response = await clients[service].get(path)
    assert response.status_code == 200, response.text


@by_service
async def test_openapi_documents_the_api_token_on_every_read_route_and_nowhere_else(clients, service):
    schema = (await clients[service].get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["ApiToken"] | {"description": ""} == {
        "type": "http", "scheme": "bearer", "description": ""}
    # The unsubscribe link (messaging) needs no token but its own: it is opened from an email.
    public = {p for p in schema["paths"] if p.startswith("/v1/unsubscribe/")}
    read_paths = {p for p in schema["paths"] if p.startswith("/v1/") and not p.startswith("/v1/admin/")} - public
    assert read_paths
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            if path in public:
                assert "security" not in operation, path
            elif path.startswith("/v1/admin/"):  # the operator's API: its own token
                assert operation["security"] == [{"AdminToken": []}], path
            elif path in read_paths:
                assert operation["security"] == [{"ApiToken": []}], path
                assert {"401", "403"} <= set(operation["responses"]), path
            else:
                assert "security" not in operation, path


@by_route
@pytest.mark.parametrize("headers", [{}, bearer(OLD_TOKEN)], ids=["no-token", "a-token"])
async def test_in_development_without_tokens_the_read_apis_are_disabled(namespace, service, path, headers,
                                                                        monkeypatch):
    """403, naming the setting, before anything is read: no database or broker is even started."""
    monkeypatch.delenv("LIFECYCLE_API_TOKENS", raising=False)
    app = APPS[service][1](settings_for(namespace, service, environment="development", tokens=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == 403, response.text
    assert "LIFECYCLE_API_TOKENS" in problem(response)
