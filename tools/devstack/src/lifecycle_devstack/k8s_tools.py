"""helm and kubeconform for the Helm chart's offline checks (tests/deploy), built from the Go module proxy.

    python -m lifecycle_devstack.k8s_tools          # installs what is missing, prints the binaries' paths

Each tool is `go install`ed at its pinned version into a cache outside the repository
(`~/.cache/lifecycle/go-tools/<tool>-<version>/`, or under `LIFECYCLE_TOOLS_CACHE`), with GOBIN pointing
there, and reused by every later run: a version bump here installs the new version beside the old one.
Only Go (on the machine) and the Go module proxy are needed. A lock file keeps two processes from
building the same tool at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# tool name -> (Go package, version)
TOOLS: dict[str, tuple[str, str]] = {
    "helm": ("helm.sh/helm/v3/cmd/helm", "v3.21.4"),
    "kubeconform": ("github.com/yannh/kubeconform/cmd/kubeconform", "v0.8.0"),
}


def cache_dir() -> Path:
    configured = os.environ.get("LIFECYCLE_TOOLS_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "lifecycle"


def binary_path(tool: str) -> Path:
    _, version = TOOLS[tool]
    return cache_dir() / "go-tools" / f"{tool}-{version}" / tool


def ensure(tool: str) -> Path:
    """The tool's binary, `go install`ed into the cache first if it is not there yet."""
    binary = binary_path(tool)
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(f"{tool} is not in {binary.parent} and Go is not installed to build it "
                           "(install Go 1.24+, then run this again)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent.parent / f"{tool}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then look again
        if binary.is_file():
            return binary
        package, version = TOOLS[tool]
        env = {**os.environ, "GOBIN": str(binary.parent), "CGO_ENABLED": "0"}
        started = time.monotonic()
        print(f"installing {tool} {version} (go install {package}@{version})", file=sys.stderr, flush=True)
        subprocess.run([go, "install", f"{package}@{version}"], env=env, check=True)
        print(f"installed {tool} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return binary


def main() -> int:
    for tool in TOOLS:
        print(ensure(tool))
    return 0


if __name__ == "__main__":
    sys.exit(main())
