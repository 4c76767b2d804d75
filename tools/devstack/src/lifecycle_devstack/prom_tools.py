"""promtool, for the alert rules' checks (tests/deploy/test_observability.py): Debian's `prometheus` package.

    python -m lifecycle_devstack.prom_tools     # installs it when missing, prints its path

Installed with apt when missing (as root on Debian/Ubuntu, as scripts/year-ahead.sh installs faketime), once
per machine: the package is a prebuilt binary that installs in seconds and stays installed for every later
run. Why not `go install` from the Go module proxy, as helm and kubeconform are: promtool's module is the whole
Prometheus server (`github.com/prometheus/prometheus`), whose dependency graph (Kubernetes client, cloud SDKs
for service discovery) takes many minutes to build on a two-core machine, where apt takes seconds. The cost:
the version is the distribution's (Debian 12: 2.42), not pinned here; the rules use nothing newer.
`LIFECYCLE_PROMTOOL` names another binary.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def ensure_promtool() -> Path:
    configured = os.environ.get("LIFECYCLE_PROMTOOL")
    if configured:
        return Path(configured)
    found = shutil.which("promtool")
    if found:
        return Path(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("promtool is not installed: apt-get install prometheus (Debian/Ubuntu), "
                           "or set LIFECYCLE_PROMTOOL to a promtool binary")
    with open(Path(tempfile.gettempdir()) / "lifecycle-promtool.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing it: wait, then look again
        found = shutil.which("promtool")
        if found:
            return Path(found)
        print("installing promtool (apt-get install prometheus)", file=sys.stderr, flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"], check=True,
                       env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("promtool")
    if not found:
        raise RuntimeError("apt-get installed prometheus but promtool is not on PATH")
    return Path(found)


if __name__ == "__main__":
    print(ensure_promtool())
