"""The real client libraries against the running services: the stack, keys, installers (the checks on what
they sent: tests/support/client_libraries.py).

The first run installs what uv cannot: Debian's Chromium and the npm packages in tests/clients/node
(lifecycle_devstack.clients, idempotent and locked), so `python3 dev.py test` needs nothing by hand.
Not under tests/e2e: that directory runs a second time against Apache Kafka in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lifecycle_devstack.clients import ensure_chromium, ensure_node_clients
from lifecycle_devstack.infra import Infra

from tests.support.client_libraries import NODE_DIR
from tests.support.pipeline import ADMIN_TOKEN, API_TOKEN, Pipeline, four_services


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "clients: the real Segment/RudderStack client libraries against the services")


def pytest_collection_modifyitems(items) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.clients)


@pytest.fixture(scope="session")
def clients_stack(infra: Infra, mail_sink, tmp_path_factory) -> Iterator[Pipeline]:
    """The four services (ingest, stage-engine, messaging, loyalty) as processes, as the e2e tests run them."""
    sink, smtp_port = mail_sink
    config = infra.stack_config(smtp_port=smtp_port, api_tokens=API_TOKEN,
                                extra_env={"LIFECYCLE_INGEST_ADMIN_TOKEN": ADMIN_TOKEN,
                                           "LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN": ADMIN_TOKEN})
    config.extra_env["LIFECYCLE_STAGE_ENGINE_CAMPAIGNS_PAGE_URL"] = (
        f"http://127.0.0.1:{config.ports['messaging']}/campaigns")
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


BROWSER_SOURCE = "storefront-web"


@pytest.fixture(scope="session")
def web_site(node_modules: Path) -> Iterator[str]:
    """The storefront page and the analytics-next bundle, served from node_modules on 127.0.0.1."""
    from tests.support.browser import static_site

    with static_site(node_modules) as origin:
        yield origin


@pytest.fixture(scope="session")
def browser_write_key(clients_stack: Pipeline, web_site: str) -> str:
    """A write key (lc_wk_, browser-safe) of a source whose allowed origins hold the storefront's."""
    key = create_key(clients_stack, BROWSER_SOURCE, "write")
    response = admin(clients_stack, "PUT", f"/v1/admin/sources/{BROWSER_SOURCE}", {"allowed_origins": [web_site]})
    assert response.status_code in (200, 204), f"allowing {web_site}: {response.status_code} {response.text}"
    return key
