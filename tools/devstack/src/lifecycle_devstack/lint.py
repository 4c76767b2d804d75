"""`python3 dev.py lint`: ruff, then mypy, as CI runs them (both read their settings from pyproject.toml).

Both always run, so one run shows every problem; the exit status is non-zero when either failed.
"""

from __future__ import annotations

import subprocess
import sys

CHECKS = (
    ("ruff check .", [sys.executable, "-m", "ruff", "check", "."]),
    ("mypy", [sys.executable, "-m", "mypy"]),  # what it checks, and how strictly: [tool.mypy]
)


def main() -> int:
    if len(sys.argv) > 1:
        sys.exit("usage: python3 dev.py lint (no arguments: ruff and mypy take theirs from pyproject.toml)")
    failed = []
    for name, argv in CHECKS:
        print(f"$ {name}", flush=True)
        if subprocess.run(argv, check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"lint failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
