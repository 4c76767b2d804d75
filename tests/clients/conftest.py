"""The real client libraries against the running services: the stack, keys, installers, checks.

The first run installs what uv cannot: Debian's Chromium and the npm packages in tests/clients/node
(lifecycle_devstack.clients, idempotent and locked), so `python3 dev.py test` needs nothing by hand.
Not under tests/e2e: that directory runs a second time against Apache Kafka in CI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from lifecycle_devstack.clients import ensure_chromium, ensure_node_clients
from lifecycle_devstack.infra import Infra
from lifecycle_shared.testing import eventually, read_topic

from tests.e2e.conftest import ADMIN_TOKEN, API_TOKEN, Pipeline, four_services, mail_sink  # noqa: F401 - fixture

NODE_DIR = Path(__file__).parent / "node"
PERSON_NAME = "Ann Example"  # the person, on identify
GROUP_NAME = "Acme Industries"  # the company, on group: must never become the person's name


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "clients: the real Segment/RudderStack client libraries against the services")


def pytest_collection_modifyitems(items) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.clients)


@pytest.fixture(scope="session")
def clients_stack(infra: Infra, mail_sink, tmp_path_factory) -> Iterator[Pipeline]:  # noqa: F811 - the fixture
    """The four services (ingest, stage-engine, messaging, loyalty) as processes, as the e2e tests run them."""
    sink, smtp_port = mail_sink
    config = infra.stack_config(smtp_port=smtp_port, api_tokens=API_TOKEN,
                                extra_env={"LIFECYCLE_INGEST_ADMIN_TOKEN": ADMIN_TOKEN,
                                           "LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN": ADMIN_TOKEN})
    with four_services(infra, config, tmp_path_factory.mktemp("client-logs")) as (processes, key):
        yield Pipeline(config=config, processes=processes, write_key=key, mail=sink)


def admin(stack: Pipeline, method: str, path: str, body: dict) -> httpx.Response:
    return httpx.request(method, stack.url("ingest") + path, json=body, timeout=30,
                         headers={"authorization": f"Bearer {stack.admin_token}"})


def create_key(stack: Pipeline, source: str, kind: str) -> str:
    """A new key of `kind` ("write": browser-safe lc_wk_, "server": lc_sk_) for `source`, by the admin API."""
    response = admin(stack, "POST", "/v1/admin/keys", {"source": source, "kind": kind})
    assert response.status_code == 201, f"creating a {kind} key: {response.status_code} {response.text}"
    body = response.json()
    key = body.get("key") or body.get("write_key")
    assert key and key.startswith("lc_sk_" if kind == "server" else "lc_wk_"), body
    return key


@pytest.fixture(scope="session")
def server_key(clients_stack: Pipeline) -> str:
    return create_key(clients_stack, "client-libraries", "server")


@pytest.fixture(scope="session")
def node_modules() -> Path:
    return ensure_node_clients(NODE_DIR)


@pytest.fixture(scope="session")
def chromium() -> Path:
    return ensure_chromium()


@dataclass
class Published:
    """The touchpoints ingest published for some messageIds (CloudEvent data, keyed by messageId)."""

    by_message_id: dict[str, dict]


async def published(stack: Pipeline, message_ids: set[str], *, timeout_s: float = 30) -> Published:
    """Wait until every one of `message_ids` is on the touchpoints topic; their touchpoints."""
    topic = stack.config.topic_prefix + "touchpoints.v1"
    found: dict[str, dict] = {}

    async def all_there():
        records = await read_topic(stack.config.kafka_bootstrap, topic, timeout_s=5)
        for record in records:
            data = json.loads(record.value).get("data") or {}
            if data.get("messageId") in message_ids:
                found[data["messageId"]] = data
        return found if set(found) == message_ids else None

    try:
        await eventually(all_there, timeout_s=timeout_s, interval_s=0.5, what="every event on the touchpoints topic")
    except AssertionError as error:
        raise AssertionError(f"missing from the touchpoints topic: {sorted(message_ids - set(found))}") from error
    return Published(found)


async def profile_when(stack: Pipeline, customer: str, ready, *, what: str, timeout_s: float = 30) -> dict:
    """The stage engine's profile of `customer` once `ready(profile)` holds (read with the API token)."""
    async with stack.client() as client:
        async def probe():
            profile = await stack.get(client, "stage-engine", f"/v1/customers/{customer}")
            return profile if profile and ready(profile) else None

        return await eventually(probe, timeout_s=timeout_s, what=what)


def assert_person_profile(profile: dict, *, user_id: str, anonymous_id: str | None, email: str,
                          stage: str, orders: int, revenue: float | None = None) -> None:
    """The customer's profile shows the events: identity merged, the person's traits (never the group's
    name), the stage the events lead to, the orders counted."""
    assert profile["customer_id"] == user_id and profile["user_id"] == user_id, profile
    if anonymous_id is not None:
        assert anonymous_id in profile["anonymous_ids"], profile
    assert profile["traits"].get("email") == email, profile
    assert profile["traits"].get("name") == PERSON_NAME, profile
    assert GROUP_NAME not in json.dumps(profile["traits"]), profile
    assert profile["stage"] == stage, profile
    assert profile["orders"] == orders, profile
    if revenue is not None:
        assert profile["revenue"] == pytest.approx(revenue), profile


BROWSER_SOURCE = "storefront-web"


@pytest.fixture(scope="session")
def web_site(node_modules: Path) -> Iterator[str]:
    """The storefront page and the analytics-next bundle, served from node_modules on 127.0.0.1."""
    from tests.clients.browser import static_site

    with static_site(node_modules) as origin:
        yield origin


@pytest.fixture(scope="session")
def browser_write_key(clients_stack: Pipeline, web_site: str) -> str:
    """A write key (lc_wk_, browser-safe) of a source whose allowed origins hold the storefront's."""
    key = create_key(clients_stack, BROWSER_SOURCE, "write")
    response = admin(clients_stack, "PUT", f"/v1/admin/sources/{BROWSER_SOURCE}", {"allowed_origins": [web_site]})
    assert response.status_code in (200, 204), f"allowing {web_site}: {response.status_code} {response.text}"
    return key
