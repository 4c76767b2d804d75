"""What the Helm chart checks (tests/deploy) share: the chart, its example values, and `helm template` rendered
and parsed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "lifecycle"
SCHEMAS = ROOT / "deploy" / "helm" / "schemas"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
KUBE_VERSION = "1.34.0"  # the version of the vendored Kubernetes schemas (deploy/helm/schemas/README.md)
# None: the chart's own values.yaml alone.
VALUE_FILES = [None, *EXAMPLES]
by_values = pytest.mark.parametrize("values", VALUE_FILES, ids=lambda p: "default" if p is None else p.stem)

SECRET_NAMES = re.compile(r"TOKEN|PASSWORD|SECRET|DATABASE_URL|_KEY$")
# The topics each consumer reads, as the services' main.py declare them.
CONSUMER_TOPICS = {"stage-engine": {"touchpoints.v1"},
                   "messaging": {"stage-transitions.v1", "touchpoints.v1", "loyalty-events.v1"},
                   "loyalty": {"touchpoints.v1", "stage-transitions.v1"}}


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, check=False, timeout=120)


def template(helm: Path, values: Path | None = None, *overrides: str) -> subprocess.CompletedProcess[str]:
    args = ["template", "lc", str(CHART), "--namespace", "shop", "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["-f", str(values)]
    for override in overrides:
        args += ["--set", override]
    return helm_run(helm, *args)


def render(helm: Path, values: Path | None = None, *overrides: str) -> list[dict[str, Any]]:
    result = template(helm, values, *overrides)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]

