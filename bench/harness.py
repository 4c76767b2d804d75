"""The system under test, started and stopped by the benchmark itself.

Embedded Tansu + durable PostgreSQL (`Infra.start(durable_postgres=True)`), one fresh namespace,
the four services as subprocesses and a write key, exactly as tests/e2e/conftest.py does; plus
an SMTP sink for messaging and a second ingest process ("ingest-sink") that shares ingest's
database (so the same write key works) but publishes to topics under its own prefix that nothing
consumes: the HTTP throughput phases then measure ingest alone, as the producer baseline measures
the producer alone, without leaving a backlog for the consumers to chew through.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import httpx
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.ports import free_port, wait_for_port
from lifecycle_devstack.services import BY_NAME, SERVICES, ServiceProcess, StackConfig, run_module
from lifecycle_shared.settings import KafkaSettings


class Harness:
    def __init__(self) -> None:
        self.infra: Infra | None = None
        self.config: StackConfig | None = None
        self.processes: dict[str, ServiceProcess] = {}
        self.write_key = ""
        self.mail: subprocess.Popen | None = None
        self.logs: Path | None = None

    def start(self) -> None:
        self.infra = Infra.start(durable_postgres=True)
        self.logs = self.infra.work_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        smtp_port = free_port()
        mail_log = open(self.logs / "mail.log", "ab")  # noqa: SIM115 - owned by the child
        self.mail = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}",
                                      "-c", "aiosmtpd.handlers.Sink"], stdout=mail_log, stderr=mail_log,
                                     start_new_session=True)
        self.config = self.infra.stack_config(smtp_port=smtp_port)
        self.infra.prepare(self.config)
        wait_for_port(smtp_port, timeout_s=20)
        for service in SERVICES:
            self.processes[service.name] = ServiceProcess(service, self.config, self.logs / f"{service.name}.log")
        sink = dataclasses.replace(
            self.config, ports={**self.config.ports, "ingest": free_port()},
            extra_env={**self.config.extra_env, "LIFECYCLE_KAFKA_TOPIC_PREFIX": self.sink_prefix})
        self.processes["ingest-sink"] = ServiceProcess(BY_NAME["ingest"], sink, self.logs / "ingest-sink.log")
        for process in self.processes.values():
            process.start()
        for process in self.processes.values():
            process.wait_ready()
        self.write_key = run_module(BY_NAME["ingest"], self.config, "create-key", "bench").strip()

    @property
    def sink_prefix(self) -> str:
        return self.config.topic_prefix + "sink."

    def url(self, name: str) -> str:
        return self.processes[name].url

    def kafka(self, *, prefix: str | None = None) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.infra.kafka_bootstrap,
                             enable_idempotence=self.infra.kafka_idempotence,
                             topic_prefix=self.config.topic_prefix if prefix is None else prefix)

    def restart(self, name: str) -> None:
        """Stop a service (graceful: last offsets committed) and start it again, not waiting."""
        self.processes[name].stop()
        self.processes[name].start()

    def cpu_roles(self) -> dict[str, list[int]]:
        roles: dict[str, list[int]] = {"bench": [os.getpid()]}
        for name, process in self.processes.items():
            if process.process and process.process.poll() is None:
                roles[name] = [process.process.pid]
        for part in self.infra._owned if self.infra else ():  # noqa: SLF001 - pids of what Infra started
            role = "postgres" if hasattr(part, "data_dir") else "broker"
            if part.process and part.process.poll() is None:
                roles[role] = [part.process.pid]
        return roles

    def describe(self) -> dict:
        return {"broker": self.infra.broker_name, "kafka_idempotence": self.infra.kafka_idempotence,
                "postgres_durable": True, "topic_prefix": self.config.topic_prefix,
                "database_prefix": self.config.database_prefix, "work_dir": str(self.infra.work_dir),
                "services": {name: p.url for name, p in self.processes.items()}}

    def stop(self) -> None:
        """Stop everything that was started, whatever failed; never raises."""
        for name, process in self.processes.items():
            try:
                process.stop()
            except Exception as error:  # noqa: BLE001 - keep stopping the rest
                print(f"warning: stopping {name}: {error!r}", file=sys.stderr)
        if self.mail and self.mail.poll() is None:
            self.mail.terminate()
            try:
                self.mail.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.mail.kill()
        if self.infra:
            self.infra.stop()


async def metrics_text(client: httpx.AsyncClient, base_url: str) -> str:
    response = await client.get(base_url + "/metrics")
    response.raise_for_status()
    return response.text


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (Prometheus text format)."""
    total = 0.0
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, _, value = line.rpartition(" ")
            if all(label in series for label in wanted):
                total += float(value)
    return total


def metric_by_label(text: str, name: str, label: str, **labels: str) -> dict[str, float]:
    """{label value: sample} for `name`, e.g. consumed events by outcome."""
    found: dict[str, float] = {}
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in wanted):
            series, _, value = line.rpartition(" ")
            marker = f'{label}="'
            if marker in series:
                key = series.split(marker, 1)[1].split('"', 1)[0]
                found[key] = found.get(key, 0.0) + float(value)
    return found
