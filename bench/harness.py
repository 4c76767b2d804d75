"""The system under test, started and stopped by the benchmark itself.

Embedded Tansu + durable PostgreSQL (`Infra.start(durable_postgres=True)`), one fresh namespace,
the four services as subprocesses and a write key, exactly as tests/support/pipeline.py does; plus
an SMTP sink for messaging and a second ingest process ("ingest-sink") that shares ingest's
database (so the same write key works) but publishes to topics under its own prefix that nothing
consumes: the HTTP throughput phases then measure ingest alone, as the producer baseline measures
the producer alone, without leaving a backlog for the consumers to chew through.

Two more processes for the ingest ratios: "ingest-sink-2w", the same as ingest-sink with
`LIFECYCLE_INGEST_WORKERS=2` (uvicorn's supervisor and two workers on one port), and "null-app"
(bench/null_app.py), the no-Kafka FastAPI endpoint the single-event figure is compared with. Every
ingest process here runs with rate limits far above anything the load generator can send
(INGEST_ENV): the benchmark measures throughput, not the limiter's refusals.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.ports import free_port, wait_for_port
from lifecycle_devstack.services import BY_NAME, SERVICES, ServiceDef, ServiceProcess, StackConfig, run_module
from lifecycle_shared.settings import KafkaSettings

BENCH_DIR = Path(__file__).resolve().parent
# Per key and instance token bucket (events/s, burst >= one full batch): out of reach on purpose.
INGEST_ENV = {"LIFECYCLE_INGEST_RATE_LIMIT_EVENTS_PER_S": "1000000000",
              "LIFECYCLE_INGEST_RATE_LIMIT_BURST": "1000000000", "LIFECYCLE_INGEST_WORKERS": "1"}
NULL_APP = ServiceDef("null-app", "null_app", "LIFECYCLE_NULL_", 0)
READ_APIS = ("stage-engine", "loyalty")  # the services the latency phases read from


class Harness:
    def __init__(self) -> None:
        self.infra: Infra | None = None
        self.config: StackConfig | None = None
        self.processes: dict[str, ServiceProcess] = {}
        self.write_key = ""
        self.key_kind = ""
        self.extra_roles: dict[str, list[int]] = {}  # e.g. py-spy while it records
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
        # The read APIs (polled by the latency phases) need a token, and records are sealed (the pepper), as in
        # production: the figures include crypto-shredding's cost (docs/erasure.md).
        config = self.infra.stack_config(smtp_port=smtp_port, api_tokens=secrets.token_hex(32),
                                         erasure_pepper=secrets.token_hex(16))
        self.config = dataclasses.replace(config, extra_env={**config.extra_env, **INGEST_ENV})
        self.infra.prepare(self.config)
        wait_for_port(smtp_port, timeout_s=20)
        for service in SERVICES:
            self.processes[service.name] = ServiceProcess(service, self.config, self.logs / f"{service.name}.log")
        sink = dataclasses.replace(
            self.config, ports={**self.config.ports, "ingest": free_port()},
            extra_env={**self.config.extra_env, "LIFECYCLE_KAFKA_TOPIC_PREFIX": self.sink_prefix})
        self.processes["ingest-sink"] = ServiceProcess(BY_NAME["ingest"], sink, self.logs / "ingest-sink.log")
        sink_2w = dataclasses.replace(sink, ports={**sink.ports, "ingest": free_port()},
                                      extra_env={**sink.extra_env, "LIFECYCLE_INGEST_WORKERS": "2"})
        self.processes["ingest-sink-2w"] = ServiceProcess(BY_NAME["ingest"], sink_2w,
                                                          self.logs / "ingest-sink-2w.log")
        null = dataclasses.replace(self.config, ports={**self.config.ports, NULL_APP.name: free_port()},
                                   extra_env={**self.config.extra_env, "PYTHONPATH": os.pathsep.join(
                                       filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")]))})
        self.processes["null-app"] = ServiceProcess(NULL_APP, null, self.logs / "null-app.log")
        for process in self.processes.values():
            process.start()
        for process in self.processes.values():
            process.wait_ready()
        # A server key: write keys may not send "Order Completed" (the latency phases send orders).
        try:
            self.write_key = run_module(BY_NAME["ingest"], self.config, "create-key", "bench", "--server").strip()
            self.key_kind = "server (create-key bench --server)"
        except RuntimeError:
            self.write_key = run_module(BY_NAME["ingest"], self.config, "create-key", "bench").strip()
            self.key_kind = "write (create-key bench; --server not accepted)"

    @property
    def read_headers(self) -> dict[str, str]:
        """For the read APIs (stage engine, messaging, loyalty GETs)."""
        return {"authorization": f"Bearer {self.config.api_token}"}

    @property
    def sink_prefix(self) -> str:
        return self.config.topic_prefix + "sink."

    def url(self, name: str) -> str:
        return self.processes[name].url

    def start_read_apis(self) -> None:
        """An `serve --role api` process beside each consuming service whose reads the latency phases make
        (READ_APIS), as the chart deploys them (deploy/helm: `<service>-api` Deployments): their probes and
        read-backs are then answered outside the process that consumes, instead of taking its event loop."""
        for service in READ_APIS:
            name = f"api.{service}"
            if name not in self.processes:
                self.processes[name] = ServiceProcess(BY_NAME[service], self.config, self.logs / f"{name}.log",
                                                      role="api", port=free_port())
                self.processes[name].start()
        for service in READ_APIS:
            self.processes[f"api.{service}"].wait_ready()

    def read_url(self, service: str) -> str:
        """Where the read API of `service` is served: its api-role process once started, else the service's."""
        return self.url(f"api.{service}") if f"api.{service}" in self.processes else self.url(service)

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
        roles.update(self.extra_roles)
        for part in self.infra._owned if self.infra else ():  # noqa: SLF001 - pids of what Infra started
            role = "postgres" if hasattr(part, "data_dir") else "broker"
            if part.process and part.process.poll() is None:
                roles[role] = [part.process.pid]
        return roles

    def describe(self) -> dict:
        return {"broker": self.infra.broker_name, "kafka_idempotence": self.infra.kafka_idempotence,
                "postgres_durable": True, "topic_prefix": self.config.topic_prefix,
                "database_prefix": self.config.database_prefix, "work_dir": str(self.infra.work_dir),
                "services": {name: p.url for name, p in self.processes.items()},
                "ingest_env": INGEST_ENV | {"LIFECYCLE_INGEST_WORKERS": "1 (ingest, ingest-sink), 2 (ingest-sink-2w)"},
                "key_kind": self.key_kind}

    def worker_pids(self, name: str) -> list[int]:
        """The processes that serve requests: the workers under uvicorn's supervisor, else the process."""
        root = psutil.Process(self.processes[name].process.pid)
        children = [c.pid for c in root.children() if "resource_tracker" not in " ".join(c.cmdline())]
        return children or [root.pid]

    def connections_per_worker(self, name: str) -> dict[int, int]:
        """Established connections on the service's port, per worker pid (how the kernel spread them)."""
        port = self.processes[name].config.ports["ingest" if name.startswith("ingest") else name]
        found = {}
        for pid in self.worker_pids(name):
            try:
                found[pid] = sum(1 for c in psutil.Process(pid).net_connections("tcp")
                                 if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
            except psutil.Error:
                found[pid] = None
        return found

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
            self.infra.stop(keep_files=True)  # run.py deletes them unless --keep or a failure


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
