"""The whole pipeline as users run it: four service processes, a real SMTP server (aiosmtpd)
started by the test, talking over HTTP and Kafka."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME, SERVICES, ServiceProcess, StackConfig, run_module


@dataclass
class MailSink:
    """aiosmtpd handler keeping every received email."""

    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


ADMIN_TOKEN = "e2e-admin-token-5f0c9a1b7d3e"


@dataclass
class Pipeline:
    config: StackConfig
    processes: dict[str, ServiceProcess]
    write_key: str
    mail: MailSink
    admin_token: str = ADMIN_TOKEN

    def url(self, service: str) -> str:
        return self.processes[service].url

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=30)

    async def send(self, client: httpx.AsyncClient, *events: dict) -> httpx.Response:
        return await client.post(self.url("ingest") + "/v1/batch", json={"batch": list(events)},
                                 auth=(self.write_key, ""))

    async def get(self, client: httpx.AsyncClient, service: str, path: str):
        response = await client.get(self.url(service) + path)
        return response.json() if response.status_code == 200 else None


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[tuple[MailSink, int]]:
    sink, port = MailSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@contextmanager
def four_services(infra: Infra, config: StackConfig, logs: Path) -> Iterator[tuple[dict[str, ServiceProcess], str]]:
    """The four services as processes in `config`'s namespace, ready, with a write key."""
    infra.prepare(config)
    processes = {s.name: ServiceProcess(s, config, logs / f"{s.name}.log") for s in SERVICES}
    try:
        for process in processes.values():
            process.start()
        for process in processes.values():
            process.wait_ready()
        yield processes, run_module(BY_NAME["ingest"], config, "create-key", "e2e-shop").strip()
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture(scope="session")
def pipeline(infra: Infra, mail_sink, tmp_path_factory) -> Iterator[Pipeline]:
    sink, smtp_port = mail_sink
    config = infra.stack_config(smtp_port=smtp_port, extra_env={"LIFECYCLE_INGEST_ADMIN_TOKEN": ADMIN_TOKEN})
    with four_services(infra, config, tmp_path_factory.mktemp("logs")) as (processes, key):
        yield Pipeline(config=config, processes=processes, write_key=key, mail=sink)
