"""The whole pipeline as users run it: the four services as processes on a namespace, a write key, the
tokens of the read and admin APIs, and a client's view of it all (`Pipeline`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import BY_NAME, SERVICES, ServiceProcess, StackConfig, run_module
from lifecycle_shared.testing import eventually

from tests.support.mail_sink import MailSink

ADMIN_TOKEN = "e2e-admin-token-5f0c9a1b7d3e"  # ingest's, the stage engine's and loyalty's admin APIs
API_TOKEN = "e2e-api-token-3b8d61f0a94c27e5"  # LIFECYCLE_API_TOKENS: the read APIs
ERASURE_PEPPER = "e2e-erasure-pepper-91d4c2a7"  # LIFECYCLE_ERASURE_PEPPER, the same in every service


@dataclass
class Pipeline:
    config: StackConfig
    processes: dict[str, ServiceProcess]
    write_key: str
    mail: MailSink
    admin_token: str = ADMIN_TOKEN
    api_token: str = API_TOKEN

    def url(self, service: str) -> str:
        return self.processes[service].url

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=30)

    async def send(self, client: httpx.AsyncClient, *events: dict) -> httpx.Response:
        return await client.post(self.url("ingest") + "/v1/batch", json={"batch": list(events)},
                                 auth=(self.write_key, ""))

    async def get(self, client: httpx.AsyncClient, service: str, path: str):
        response = await client.get(self.url(service) + path, headers=bearer(self.api_token))
        return response.json() if response.status_code == 200 else None


    async def transitions(self, client: httpx.AsyncClient, customer: str, *, at_least: int) -> list[dict]:
        """The customer's stored stage history, once it holds at least `at_least` transitions."""
        async def enough():
            found = await self.get(client, "stage-engine", f"/v1/customers/{customer}/transitions")
            return found if found and len(found) >= at_least else None

        return await eventually(enough, timeout_s=60, what=f"{at_least} transitions of {customer}")

    async def import_history(self, lines: list[dict], folder: Path) -> None:
        """The import CLI over these Segment calls (one NDJSON line each), into ingest's /v1/import."""
        history = folder / "history.ndjson"
        history.write_text("".join(json.dumps(line) + "\n" for line in lines))
        done = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "lifecycle_ingest.importer", str(history), "--url", self.url("ingest"),
            "--write-key", self.write_key], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr


async def metric_total(client: httpx.AsyncClient, url: str, name: str) -> float:
    """The sum of a Prometheus counter's samples (every label set) on a service's `/metrics`."""
    text = (await client.get(url + "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def bearer(token: str = API_TOKEN) -> dict[str, str]:
    """Headers for the read APIs (profiles, messages, balances)."""
    return {"authorization": f"Bearer {token}"}


@contextmanager
def four_services(infra: Infra, config: StackConfig, logs: Path) -> Iterator[tuple[dict[str, ServiceProcess], str]]:
    """The four services as processes in `config`'s namespace, ready, with a write key; the read APIs
    take API_TOKEN unless `config` names its own tokens."""
    config = config if config.api_tokens else dataclasses.replace(config, api_tokens=API_TOKEN)
    infra.prepare(config)
    processes = {s.name: ServiceProcess(s, config, logs / f"{s.name}.log") for s in SERVICES}
    try:
        for process in processes.values():
            process.start()
        for process in processes.values():
            process.wait_ready()
        # A server key: the tests send orders and refunds, which browsers' write keys may not.
        key = run_module(BY_NAME["ingest"], config, "create-key", "e2e-shop", "--server").strip()
        wait_until_key_works(processes["ingest"].url, key)
        yield processes, key
    finally:
        for process in processes.values():
            process.stop()


def wait_until_key_works(ingest_url: str, key: str, *, timeout_s: float = 15) -> None:
    """Ingest loads keys within a second of a change (LIFECYCLE_INGEST_KEY_REFRESH_S): a key made by
    the CLI works once a request with it is no longer a 401 (an empty event: a 400, nothing sent)."""
    deadline = time.monotonic() + timeout_s
    while httpx.post(ingest_url + "/v1/track", json={}, auth=(key, "")).status_code == 401:
        assert time.monotonic() < deadline, "ingest never accepted the key the CLI created"
        time.sleep(0.1)
