"""Stopping the child processes the stack started: SIGTERM, then SIGKILL after a grace period."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen | None, *, grace_s: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
