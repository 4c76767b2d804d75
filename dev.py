#!/usr/bin/env python3
"""One entry point for a fresh clone: creates the environment, then runs the stack or the tests.

    python3 dev.py up      # embedded Kafka-compatible broker + PostgreSQL + the four services
    python3 dev.py test    # the whole test suite (starts what it needs)
    python3 dev.py lint    # ruff and mypy, as CI runs them
    python3 dev.py bench   # the benchmark harness (writes bench/report.json)
    python3 dev.py demo    # fills the running stack with a two-year demo shop

Only the Python standard library is used here: the script installs uv into .lifecycle/uv,
syncs the locked environment into .venv, and hands over to the project's own code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
UV_VERSION = "0.13.8"
TOOLS = ROOT / ".lifecycle" / "uv"
VENV = ROOT / ".venv"


def ensure_environment() -> Path:
    uv = TOOLS / "bin" / "uv"
    if not uv.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        subprocess.run([str(TOOLS / "bin" / "pip"), "install", "-q", f"uv=={UV_VERSION}"], check=True)
    subprocess.run([str(uv), "sync", "--frozen", "--quiet"], check=True, cwd=ROOT)
    return VENV / "bin" / "python"


COMMANDS = {
    "up": ["-m", "lifecycle_devstack", "up"],
    "test": ["-m", "pytest"],
    "lint": ["-m", "lifecycle_devstack.lint"],
    "bench": ["bench/run.py"],
    "demo": ["-m", "lifecycle_devstack.demo"],
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}} [args...]")
    python = ensure_environment()
    argv = [str(python), *COMMANDS[sys.argv[1]], *sys.argv[2:]]
    os.chdir(ROOT)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
