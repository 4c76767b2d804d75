"""The four services as subprocesses: their environment, start, readiness, stop and kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lifecycle_devstack.processes import stop_process


@dataclass(frozen=True)
class ServiceDef:
    name: str
    module: str
    env_prefix: str
    default_port: int

    @property
    def database(self) -> str:
        return "lifecycle_" + self.name.replace("-", "_")


SERVICES = (
    ServiceDef("ingest", "lifecycle_ingest", "LIFECYCLE_INGEST_", 8000),
    ServiceDef("stage-engine", "lifecycle_stage_engine", "LIFECYCLE_STAGE_ENGINE_", 8001),
    ServiceDef("messaging", "lifecycle_messaging", "LIFECYCLE_MESSAGING_", 8002),
    ServiceDef("loyalty", "lifecycle_loyalty", "LIFECYCLE_LOYALTY_", 8003),
)
BY_NAME = {service.name: service for service in SERVICES}


@dataclass(frozen=True)
class StackConfig:
    """Everything that differs between the local stack, a test run and a benchmark run."""

    kafka_bootstrap: str
    kafka_idempotence: bool
    postgres_url: str  # server URL without a database: postgresql+asyncpg://user@host:port
    embedded_broker: bool = False  # Tansu: topics live in memory and vanish when it restarts
    topic_prefix: str = ""
    database_prefix: str = ""
    smtp_port: int = 1025
    ports: dict[str, int] = field(default_factory=lambda: {s.name: s.default_port for s in SERVICES})
    extra_env: dict[str, str] = field(default_factory=dict)
    # LIFECYCLE_API_TOKENS for every service (comma-separated); empty: whatever the environment has.
    api_tokens: str = ""
    # LIFECYCLE_ERASURE_PEPPER for every service (docs/erasure.md); empty: whatever the environment has.
    erasure_pepper: str = ""

    @property
    def api_token(self) -> str:
        """The first read-API token: what a client of this stack sends as `Authorization: Bearer`."""
        return self.api_tokens.split(",")[0].strip()

    def database_url(self, service: ServiceDef) -> str:
        return f"{self.postgres_url}/{self.database_prefix}{service.database}"

    def env(self, service: ServiceDef) -> dict[str, str]:
        p = service.env_prefix
        return {
            **os.environ,
            "LIFECYCLE_ENVIRONMENT": "development",
            "LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "LIFECYCLE_KAFKA_ENABLE_IDEMPOTENCE": str(self.kafka_idempotence).lower(),
            "LIFECYCLE_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "LIFECYCLE_KAFKA_DETECT_BROKER_RESTARTS": str(self.embedded_broker).lower(),
            f"{p}DATABASE_URL": self.database_url(service),
            f"{p}PORT": str(self.ports[service.name]),
            "LIFECYCLE_MESSAGING_SMTP_HOST": "127.0.0.1",
            "LIFECYCLE_MESSAGING_SMTP_PORT": str(self.smtp_port),
            # The unsubscribe links in the stack's emails lead to its own messaging service.
            "LIFECYCLE_MESSAGING_PUBLIC_URL": f"http://127.0.0.1:{self.ports['messaging']}",
            # The stage engine's erasure report reads ingest's, messaging's and loyalty's.
            "LIFECYCLE_STAGE_ENGINE_INGEST_URL": f"http://127.0.0.1:{self.ports['ingest']}",
            "LIFECYCLE_STAGE_ENGINE_MESSAGING_URL": f"http://127.0.0.1:{self.ports['messaging']}",
            "LIFECYCLE_STAGE_ENGINE_LOYALTY_URL": f"http://127.0.0.1:{self.ports['loyalty']}",
            **({"LIFECYCLE_API_TOKENS": self.api_tokens} if self.api_tokens else {}),
            # With the pepper, ingest seals what it publishes and the others fetch keys from it (docs/erasure.md).
            **({"LIFECYCLE_ERASURE_PEPPER": self.erasure_pepper,
                "LIFECYCLE_KEYS_URL": f"http://127.0.0.1:{self.ports['ingest']}"} if self.erasure_pepper else {}),
            **self.extra_env,
        }


def run_module(service: ServiceDef, config: StackConfig, *args: str) -> str:
    """Run `python -m <service> <args>` to completion (migrate, create-key); returns stdout."""
    result = subprocess.run([sys.executable, "-m", service.module, *args], env=config.env(service),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{service.name} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@dataclass
class ServiceProcess:
    """One `serve` process of a service. `role`: `serve --role` (api, consumer or all); `port`: its own port
    instead of the config's (two roles of one service side by side)."""

    service: ServiceDef
    config: StackConfig
    log_path: Path
    process: subprocess.Popen | None = None
    role: str = "all"
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port or self.config.ports[self.service.name]}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        env = self.config.env(self.service)
        if self.port:
            env[f"{self.service.env_prefix}PORT"] = str(self.port)
        role = [] if self.role == "all" else ["--role", self.role]
        self.process = subprocess.Popen([sys.executable, "-m", self.service.module, "serve", *role],
                                        env=env, stdout=log, stderr=log, start_new_session=True)

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.service.name} exited; see {self.log_path}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.service.name} not ready after {timeout_s}s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no last commit."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)
