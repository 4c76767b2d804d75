"""Regenerates the JSON schemas kubeconform validates the chart against (see README.md beside this file).

    python3 deploy/helm/schemas/regenerate.py    # a Python with PyYAML and pip; Maven and Go on PATH

Downloads, through the package registries only: the `kubernetes-validate` wheel from PyPI (Kubernetes'
schemas, one folder per version), Strimzi's `io.strimzi:api` test jar from Maven Central (its CRDs), and
the KEDA and CloudNativePG Go modules from the Go module proxy (their CRDs). Keeps only the kinds the chart
renders (KINDS, CRDS), written as kubeconform's standalone-strict schemas: every $ref inlined, and objects
that declare their properties closed (additionalProperties: false).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
KUBERNETES_VALIDATE = "1.37.0"  # PyPI: kubernetes-validate, which ships the schemas of Kubernetes 1.25-1.37
KUBERNETES = "v1.34.0"
STRIMZI = "0.49.1"  # Maven Central: io.strimzi:api:<version>:jar:tests holds crds/
KEDA = ("github.com/kedacore/keda/v2", "v2.20.2")
CNPG = ("github.com/cloudnative-pg/cloudnative-pg", "v1.28.1")

# Kubernetes kinds the chart renders, as kubeconform names their schema files.
KINDS = ["configmap-v1", "service-v1", "serviceaccount-v1", "deployment-apps-v1", "job-batch-v1",
         "poddisruptionbudget-policy-v1", "horizontalpodautoscaler-autoscaling-v2",
         "networkpolicy-networking-v1"]
# (where the CRD comes from, file inside it, served version kept)
CRDS = [
    ("strimzi", "crds/v1beta2/040-Crd-kafka.yaml", "v1beta2"),
    ("strimzi", "crds/v1beta2/045-Crd-kafkanodepool.yaml", "v1beta2"),
    ("strimzi", "crds/v1beta2/043-Crd-kafkatopic.yaml", "v1beta2"),
    ("strimzi", "crds/v1beta2/044-Crd-kafkauser.yaml", "v1beta2"),
    ("keda", "config/crd/bases/keda.sh_scaledobjects.yaml", "v1alpha1"),
    ("cnpg", "config/crd/bases/postgresql.cnpg.io_clusters.yaml", "v1"),
    ("cnpg", "config/crd/bases/postgresql.cnpg.io_databases.yaml", "v1"),
]


def kubernetes_schemas(workdir: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(workdir),
                    f"kubernetes-validate=={KUBERNETES_VALIDATE}"], check=True)
    wheel = next(workdir.glob("kubernetes_validate-*.whl"))
    folder = f"kubernetes_validate/kubernetes-json-schema/{KUBERNETES}-local-strict"
    with zipfile.ZipFile(wheel) as archive:
        definitions = json.loads(archive.read(f"{folder}/_definitions.json"))
        defs = definitions.get("$defs") or definitions["definitions"]
        out = HERE / "kubernetes"
        out.mkdir(exist_ok=True)
        for kind in KINDS:
            schema = inline(json.loads(archive.read(f"{folder}/{kind}.json")), defs, ())
            write(out / f"{kind}.json", schema)


def inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    """`node` with every $ref to the definitions replaced by the definition itself (standalone)."""
    if isinstance(node, list):
        return [inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and "#/" in ref:
        name = ref.rsplit("/", 1)[-1]
        if name in seen:  # a recursive type (none in the kinds kept): left open
            return {}
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**inline(copy.deepcopy(defs[name]), defs, (*seen, name)), **rest}
    return {key: inline(value, defs, seen) for key, value in node.items()}


def strimzi_crds() -> Path:
    subprocess.run(["mvn", "-q", "-B", "dependency:get", f"-Dartifact=io.strimzi:api:{STRIMZI}:jar:tests",
                    "-Dtransitive=false"], check=True)
    return Path.home() / ".m2" / "repository" / "io" / "strimzi" / "api" / STRIMZI / f"api-{STRIMZI}-tests.jar"


def go_module(module: str, version: str) -> Path:
    result = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], check=True,
                            capture_output=True, text=True)
    return Path(json.loads(result.stdout)["Dir"])


def crd_schemas() -> None:
    sources = {"strimzi": strimzi_crds(), "keda": go_module(*KEDA), "cnpg": go_module(*CNPG)}
    for source, path, version in CRDS:
        where = sources[source]
        if where.suffix == ".jar":
            with zipfile.ZipFile(where) as archive:
                text = archive.read(path).decode()
        else:
            text = (where / path).read_text()
        crd = yaml.safe_load(text)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        served = [v for v in crd["spec"]["versions"] if v["name"] == version]
        if not served:
            raise SystemExit(f"{path}: no version {version}")
        schema = strict(copy.deepcopy(served[0]["schema"]["openAPIV3Schema"]))
        write(HERE / "crds" / group / f"{kind.lower()}_{version}.json", schema)


def strict(node: Any) -> Any:
    """An OpenAPI v3 schema of a CRD as a strict JSON schema (what kubeconform's openapi2jsonschema.py does
    in strict mode): objects with properties refuse others unless the CRD keeps unknown fields, and
    int-or-string fields take either."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: strict(value) for key, value in node.items()}
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if "properties" in node and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    return node


def without_descriptions(node: Any) -> Any:
    """Descriptions (string-valued; a property named `description` is a dict) weigh half the files and
    validate nothing."""
    if isinstance(node, list):
        return [without_descriptions(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: without_descriptions(value) for key, value in node.items()
            if not (key == "description" and isinstance(value, str))}


def write(path: Path, schema: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(without_descriptions(schema), separators=(",", ":"), sort_keys=True) + "\n")
    print(f"{path.relative_to(HERE)}: {path.stat().st_size // 1024} KiB")


def main() -> int:
    with tempfile.TemporaryDirectory() as workdir:
        kubernetes_schemas(Path(workdir))
    crd_schemas()
    return 0


if __name__ == "__main__":
    sys.exit(main())
