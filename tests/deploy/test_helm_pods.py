"""What every pod of the rendered chart promises: probes, limits, the restricted security context, a PDB, network
policies; no secret value, no latest tag, no Helm hook; migrations as plain Jobs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.helm_chart import (
    CHART,
    SECRET_NAMES,
    of_kind,
    pod_specs,
    render,
    template,
)

# --- what every pod promises ---------------------------------------------------------------------


def test_every_app_container_has_its_probes(rendered: list[dict[str, Any]]):
    for name, spec in pod_specs(of_kind(rendered, "Deployment")):
        for container in spec["containers"]:
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name


def test_every_container_has_requests_limits_and_the_restricted_security_context(rendered: list[dict[str, Any]]):
    checked = 0
    for name, spec in pod_specs(rendered):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec.get("automountServiceAccountToken") is False, name
        mounts_by_volume = {v["name"]: v for v in spec.get("volumes", [])}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{name}/{container['name']}"
            for side in ("requests", "limits"):
                assert set(container["resources"][side]) >= {"cpu", "memory"}, where
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "privileged" not in context or context["privileged"] is False, where
            # What the read-only root leaves writable: /tmp, an emptyDir.
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in mounts_by_volume[tmp[0]["name"]], where
            checked += 1
    assert checked >= 7 * 2 + 4


def test_every_app_pod_waits_for_its_schema_and_runs_its_role(rendered: list[dict[str, Any]]):
    for deployment in of_kind(rendered, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"].removeprefix("lc-")
        # Ingest is one Deployment: its routes and its erasure consumer (docs/erasure.md).
        role = "consumer" if name.endswith("-consumer") else "all" if name == "ingest" else "api"
        service = name.removesuffix("-consumer").removesuffix("-api")
        module = f"lifecycle_{service.replace('-', '_')}"
        (init,) = spec["initContainers"]
        assert init["command"][:4] == ["python", "/scripts/wait_for_schema.py", module,
                                       f"LIFECYCLE_{service.replace('-', '_').upper()}_DATABASE_URL"]
        assert init["image"] == spec["containers"][0]["image"]  # the migrations of the same version
        assert spec["containers"][0]["command"] == ["python", "-m", module, "serve", "--role", role]
        # A pod serving the API leaves the endpoints before it stops accepting connections.
        assert ("preStop" in spec["containers"][0].get("lifecycle", {})) == (role != "consumer")
        assert spec["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"].items() <= \
            deployment["spec"]["template"]["metadata"]["labels"].items()


def test_every_deployment_has_a_pod_disruption_budget(rendered: list[dict[str, Any]]):
    budgets = [b["spec"] for b in of_kind(rendered, "PodDisruptionBudget")]
    for deployment in of_kind(rendered, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, deployment["metadata"]["name"]
        assert "maxUnavailable" in matching[0]  # a one-replica Deployment can still be drained


def test_every_pod_is_selected_by_a_network_policy_with_both_directions(rendered: list[dict[str, Any]]):
    policies = [p["spec"] for p in of_kind(rendered, "NetworkPolicy")]
    for owner in rendered:
        if owner["kind"] not in ("Deployment", "Job"):
            continue
        name = f"{owner['kind']}/{owner['metadata']['name']}"
        labels = owner["spec"]["template"]["metadata"]["labels"]
        selecting = [p for p in policies if p["podSelector"]["matchLabels"].items() <= labels.items()]
        assert len(selecting) == 1, name
        assert selecting[0]["policyTypes"] == ["Ingress", "Egress"], name


def test_only_the_messaging_consumer_may_reach_smtp(helm: Path):
    objects = render(helm, CHART / "examples" / "external.yaml")
    for policy in of_kind(objects, "NetworkPolicy"):
        ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
        assert (587 in ports) == (policy["metadata"]["name"] == "lc-messaging-consumer"), policy["metadata"]["name"]
        if policy["metadata"]["name"].endswith("-migrate"):
            assert ports == {53, 5432}  # the migrations reach only DNS and PostgreSQL
        if policy["metadata"]["name"] == "lc-topics":
            assert ports == {53, 9092}


# --- secrets, images, hooks ----------------------------------------------------------------------


def test_no_secret_is_rendered_and_secret_settings_come_only_by_reference(rendered: list[dict[str, Any]]):
    assert not of_kind(rendered, "Secret")
    for config_map in of_kind(rendered, "ConfigMap"):
        if config_map["metadata"]["name"] != "lc-scripts":
            assert not [key for key in config_map["data"] if SECRET_NAMES.search(key)], config_map["metadata"]["name"]
    for name, spec in pod_specs(rendered):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            for env in container.get("env", []):
                if SECRET_NAMES.search(env["name"]):
                    # A reference, or a URL assembled by Kubernetes from referenced variables.
                    assert "secretKeyRef" in env.get("valueFrom", {}) or "$(LIFECYCLE_DB_PASSWORD)" in env["value"], \
                        f"{name}: {env['name']}"


def test_values_defaults_hold_no_secret_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from leaves(value, f"{path}.{key}")
        else:
            yield path, node

    suspicious = [(path, value) for path, value in leaves(values)
                  if re.search(r"(?i)password|token|secret\b", path.rsplit(".", 1)[-1])
                  and not re.search(r"(?i)key$|existingsecret$", path) and value not in ("", None)]
    assert not suspicious


def test_no_image_is_latest_or_untagged(rendered: list[dict[str, Any]]):
    for name, spec in pod_specs(rendered):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            image = container["image"]
            tag = image.rsplit("@", 1)[-1] if "@" in image else image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag.lower() != "latest", f"{name}: {image}"
    for cluster in of_kind(rendered, "Cluster"):
        assert not cluster["spec"]["imageName"].endswith(":latest")


def test_a_latest_tag_fails_the_render(helm: Path):
    for override in ("kafka.topicJob.image.tag=latest", "image.tag=LATEST", "cnpg.imageName=postgres:latest"):
        result = template(helm, CHART / "examples" / "operators.yaml", override)
        assert result.returncode != 0, override
        assert re.search(r"/(tag|imageName)'", result.stderr), result.stderr


def test_no_object_is_a_helm_hook(rendered: list[dict[str, Any]]):
    for o in rendered:
        annotations = o["metadata"].get("annotations") or {}
        assert not [key for key in annotations if key.startswith("helm.sh/hook")], o["metadata"]["name"]


def test_a_migration_job_per_service_named_by_the_image_version(helm: Path):
    def jobs(*overrides: str) -> set[str]:
        return {j["metadata"]["name"] for j in of_kind(render(helm, None, *overrides), "Job")
                if j["metadata"]["labels"]["app.kubernetes.io/component"].endswith("-migrate")}

    first = jobs("image.tag=1.0.0")
    assert {re.sub(r"-migrate-[0-9a-f]{8}$", "", name) for name in first} == {
        "lc-ingest", "lc-stage-engine", "lc-messaging", "lc-loyalty"}
    assert jobs("image.tag=1.0.0") == first  # the same release applied again: the same Jobs, nothing to re-run
    assert not jobs("image.tag=1.0.1") & first  # a new version: new Jobs (a Job's pod template is immutable)


def test_migration_jobs_run_migrate_with_the_services_settings(rendered: list[dict[str, Any]]):
    deployments = {d["metadata"]["name"]: d for d in of_kind(rendered, "Deployment")}
    migrations = [j for j in of_kind(rendered, "Job") if j["metadata"]["labels"]["app.kubernetes.io/component"]
                  .endswith("-migrate")]
    assert len(migrations) == 4
    for job in migrations:
        service = job["metadata"]["labels"]["lifecycle.io/service"]
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", f"lifecycle_{service.replace('-', '_')}", "migrate"]
        app = deployments.get(f"lc-{service}") or deployments[f"lc-{service}-api"]
        # The settings are validated on `migrate` too: the same environment as the app.
        assert container["env"] == app["spec"]["template"]["spec"]["containers"][0]["env"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"

