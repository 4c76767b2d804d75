"""The Helm chart (deploy/helm/lifecycle), checked offline: `helm lint --strict` and `helm template` over the default
values and each example values file, every rendered object validated by `kubeconform -strict` against the schemas
vendored in deploy/helm/schemas (no download), and values.schema.json closing every object."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.helm_chart import (
    CHART,
    EXAMPLES,
    SCHEMAS,
    VALUE_FILES,
    by_values,
    helm_run,
    render,
    template,
)

# --- helm and kubeconform ------------------------------------------------------------------------


def test_there_are_example_values_for_external_services_and_for_the_operators():
    assert {p.stem for p in EXAMPLES} >= {"external", "operators"}


@by_values
def test_helm_lint_strict_passes(helm: Path, values: Path | None):
    result = helm_run(helm, "lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def kubeconform_run(kubeconform: Path, manifests: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubeconform), "-strict", "-summary",
         # Only the vendored schemas: no default location, so nothing is fetched and a kind without a schema fails.
         "-schema-location", str(SCHEMAS / "kubernetes" / "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
         "-schema-location",
         str(SCHEMAS / "crds" / "{{ .Group }}" / "{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"),
         "-"],
        input=manifests, capture_output=True, text=True, check=False, timeout=120)


@by_values
def test_every_rendered_object_is_valid_for_kubeconform_strict(helm: Path, kubeconform: Path, values: Path | None):
    result = template(helm, values)
    assert result.returncode == 0, result.stderr
    checked = kubeconform_run(kubeconform, result.stdout)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    summary = re.search(r"(\d+) resources found.*Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)",
                        checked.stdout)
    assert summary, checked.stdout
    found, valid, invalid, errors, skipped = map(int, summary.groups())
    assert found == valid > 0 and invalid == errors == skipped == 0, checked.stdout


def test_kubeconform_with_the_vendored_schemas_refuses_a_misspelt_field(helm: Path, kubeconform: Path):
    # The schemas are strict (closed objects), for the Kubernetes kinds and the operators' kinds alike.
    manifests = template(helm, CHART / "examples" / "operators.yaml").stdout
    bad = (manifests.replace("\n  revisionHistoryLimit: 5\n", "\n  revisionHistoryLimit: 5\n  replica: 3\n")
           .replace("\n  topicName:", "\n  topicname: x\n  topicName:")
           .replace("\n  minReplicaCount:", "\n  minReplicas: 1\n  minReplicaCount:")
           .replace("\n  instances: 3\n", "\n  instances: 3\n  instance: 3\n"))
    checked = kubeconform_run(kubeconform, bad)
    assert checked.returncode != 0
    invalid = set(re.findall(r"- (\w+) \S+ is invalid", checked.stdout))
    assert invalid == {"Deployment", "KafkaTopic", "ScaledObject", "Cluster"}, checked.stdout


def test_the_vendored_schemas_cover_exactly_the_kinds_the_chart_renders(helm: Path):
    kinds = {(o["apiVersion"], o["kind"]) for values in VALUE_FILES for o in render(helm, values)}
    expected = set()
    for api_version, kind in kinds:
        group, _, version = api_version.rpartition("/")
        if group and "." in group and not group.endswith("k8s.io"):
            expected.add(f"crds/{group}/{kind.lower()}_{version}.json")
        else:
            suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
            expected.add(f"kubernetes/{kind.lower()}{suffix}.json")
    vendored = {p.relative_to(SCHEMAS).as_posix() for p in SCHEMAS.rglob("*.json")}
    assert vendored == expected


# --- values.schema.json --------------------------------------------------------------------------


def object_schemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node or "patternProperties" in node:
            yield where, node
        for key, value in node.items():
            yield from object_schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from object_schemas(value, f"{where}/{index}")


def test_values_schema_closes_every_object():
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = list(object_schemas(schema))
    assert len(objects) > 30
    open_ones = [where for where, node in objects if node.get("additionalProperties") is not False]
    assert not open_ones


@pytest.mark.parametrize("override", [
    "unknown=1", "ingest.replica=2", "kafka.partitions.touchpoint=3", "stageEngine.consumer.autoscaling.max=3",
    "image.tag=latest", "ingest.env.DATABASE_URL=postgresql://x", "messaging.env.SMTP_PASSWORD=x",
    "stageEngine.consumer.autoscaling.minReplicas=0",  # the sweeper and the relay run in the consumer role
])
def test_values_outside_the_schema_are_refused(helm: Path, override: str):
    result = template(helm, None, override)
    assert result.returncode != 0
    assert "schema" in result.stderr.lower() or "latest" in result.stderr, result.stderr

