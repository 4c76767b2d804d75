"""Installers for the real client libraries the tests drive: Debian's Chromium and the npm bundle.

Why this lives in test fixtures rather than in a setup script: the README promises that
`python3 dev.py test` (plain pytest) on a fresh clone installs everything the suite needs, nothing
by hand. The Python SDKs (segment-analytics-python, rudder-sdk-python, playwright) come with the
locked environment; what uv cannot install is a browser (Playwright's own browser download cannot
reach its CDN from our machines, so Debian's `chromium` is used through `executable_path`) and the
npm packages in tests/clients/node (@segment/analytics-node, the @segment/analytics-next bundle,
@rudderstack/analytics-js, @asyncapi/parser). The fixtures in
tests/clients call these functions, so the first run installs them and later runs find them.

Both functions are idempotent and hold a file lock while they work, so two test sessions (or
pytest-xdist workers) starting at once install once: the second waits, then finds the work done.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
NODE_CLIENTS_DIR = REPO_ROOT / "tests" / "clients" / "node"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
_STAMP = ".lifecycle-installed"  # in node_modules: the hash of the lock file it was installed from


class InstallError(RuntimeError):
    """A client library or browser could not be installed; the message says what to do."""


@contextlib.contextmanager
def _file_lock(name: str, timeout_s: float = 1200) -> Iterator[None]:
    """An exclusive flock on a file in the temp dir, shared by every process on the machine."""
    path = Path(tempfile.gettempdir()) / f"lifecycle-{name}.lock"
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InstallError(f"another process has held {path} for {timeout_s:.0f}s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout_s: float = 900) -> None:
    try:
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError as error:
        raise InstallError(f"{argv[0]} not found: {error}") from error
    except subprocess.TimeoutExpired as error:
        raise InstallError(f"{' '.join(argv)} did not finish in {timeout_s:.0f}s") from error
    if result.returncode != 0:
        raise InstallError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                           f"{result.stderr[-4000:]}")


def find_chromium() -> Path | None:
    """LIFECYCLE_CHROMIUM if set, else a `chromium` on PATH or in /usr/bin."""
    configured = os.environ.get("LIFECYCLE_CHROMIUM")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if found:
            return Path(found)
    return None


def ensure_chromium() -> Path:
    """The Chromium executable, installed from Debian's `chromium` package when missing (needs root + apt)."""
    found = find_chromium()
    if found:
        return found
    with _file_lock("chromium"):
        found = find_chromium()  # another process may have installed it while we waited
        if found:
            return found
        if os.environ.get("LIFECYCLE_CHROMIUM"):
            raise InstallError(f"LIFECYCLE_CHROMIUM={os.environ['LIFECYCLE_CHROMIUM']} is not a file")
        apt = shutil.which("apt-get")
        if apt is None:
            raise InstallError("Chromium is not installed and there is no apt-get to install it: install a "
                               "Chromium and set LIFECYCLE_CHROMIUM to its executable")
        if os.geteuid() != 0:
            raise InstallError("Chromium is not installed and installing it needs root: run "
                               "`sudo apt-get update && sudo apt-get install -y chromium` once, or set "
                               "LIFECYCLE_CHROMIUM to a Chromium executable")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        wait_for_dpkg = ["-o", "DPkg::Lock::Timeout=600"]  # another apt run (unattended upgrades) finishes first
        _run([apt, *wait_for_dpkg, "update", "-q"], env=env)
        _run([apt, *wait_for_dpkg, "install", "-y", "-q", "--no-install-recommends", "chromium"], env=env,
             timeout_s=1800)
        found = find_chromium()
        if found is None:
            raise InstallError("apt-get installed chromium but no chromium executable was found")
        return found


def _lock_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()


def ensure_node_clients(directory: Path = NODE_CLIENTS_DIR) -> Path:
    """`npm ci` in `directory` unless its node_modules was installed from the same package(-lock).json.

    Returns the node_modules directory.
    """
    node_modules = directory / "node_modules"
    if not (directory / "package-lock.json").is_file():
        raise InstallError(f"{directory}/package-lock.json is missing")
    stamp = node_modules / _STAMP
    wanted = _lock_digest(directory)
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return node_modules
    with _file_lock("npm-" + hashlib.sha256(str(directory).encode()).hexdigest()[:12]):
        if stamp.is_file() and stamp.read_text().strip() == wanted:
            return node_modules
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError("npm is not installed: install Node.js 20+ with npm (the Segment Node library "
                               "and the analytics-next bundle come from the npm registry)")
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=directory,
             env={**os.environ, "npm_config_update_notifier": "false"})
        stamp.write_text(wanted + "\n")
        return node_modules
