"""The Helm chart (deploy/helm/lifecycle), checked offline: `helm lint --strict` and `helm template` over the default
values and each example values file, every rendered object validated by `kubeconform -strict` against the schemas
vendored in deploy/helm/schemas (no download), and the chart's promises checked on the rendered YAML."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
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


@pytest.fixture(scope="module", params=VALUE_FILES, ids=lambda p: "default" if p is None else p.stem)
def rendered(request: pytest.FixtureRequest, helm: Path) -> list[dict[str, Any]]:
    return render(helm, request.param)


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
        role = "consumer" if name.endswith("-consumer") else "api"
        service = name.removesuffix("-consumer").removesuffix("-api")
        module = f"lifecycle_{service.replace('-', '_')}"
        (init,) = spec["initContainers"]
        assert init["command"][:4] == ["python", "/scripts/wait_for_schema.py", module,
                                       f"LIFECYCLE_{service.replace('-', '_').upper()}_DATABASE_URL"]
        assert init["image"] == spec["containers"][0]["image"]  # the migrations of the same version
        assert spec["containers"][0]["command"] == ["python", "-m", module, "serve", "--role", role]
        # An API pod leaves the endpoints before it stops accepting connections.
        assert ("preStop" in spec["containers"][0].get("lifecycle", {})) == (role == "api")
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


# --- topics and autoscaling ----------------------------------------------------------------------


def topic_partitions(objects: list[dict[str, Any]]) -> dict[str, int]:
    """Partitions per topic, from the KafkaTopic objects or the topic Job's TOPICS."""
    found = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind(objects, "KafkaTopic")}
    for job in of_kind(objects, "Job"):
        for container in job["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if "TOPICS" in env:
                found.update({name: int(count) for name, _, count in
                              (spec.rpartition(":") for spec in env["TOPICS"].split())})
    return found


def test_topics_are_created_with_production_settings(rendered: list[dict[str, Any]]):
    partitions = topic_partitions(rendered)
    assert set(partitions) == {"touchpoints.v1", "stage-transitions.v1", "loyalty-events.v1", "touchpoints.v1.dlq",
                               "stage-transitions.v1.dlq", "loyalty-events.v1.dlq"}
    for topic in of_kind(rendered, "KafkaTopic"):
        assert topic["spec"]["replicas"] == 3 and topic["spec"]["config"]["min.insync.replicas"] == 2
    for job in of_kind(rendered, "Job"):
        env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        if "TOPICS" in env:
            assert env["REPLICATION_FACTOR"] == "3" and env["MIN_INSYNC_REPLICAS"] == "2"
    for kafka in of_kind(rendered, "Kafka"):
        config = kafka["spec"]["kafka"]["config"]
        assert config["min.insync.replicas"] == 2 and config["default.replication.factor"] == 3
        assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"


def test_keda_scales_each_consumer_on_lag_at_most_to_its_topics_partitions(rendered: list[dict[str, Any]]):
    partitions = topic_partitions(rendered)
    scaled = of_kind(rendered, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == {
        "lc-stage-engine-consumer", "lc-messaging-consumer", "lc-loyalty-consumer"}
    for scaled_object in scaled:
        service = scaled_object["spec"]["scaleTargetRef"]["name"].removeprefix("lc-").removesuffix("-consumer")
        triggers = scaled_object["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}
        assert {t["metadata"]["consumerGroup"] for t in triggers} == {service}
        assert {t["metadata"]["topic"] for t in triggers} == CONSUMER_TOPICS[service]
        for trigger in triggers:
            assert scaled_object["spec"]["maxReplicaCount"] <= partitions[trigger["metadata"]["topic"]]
    # KEDA owns the consumers' replica count, the HPA ingest's.
    (hpa,) = of_kind(rendered, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "lc-ingest"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    owned = {s["spec"]["scaleTargetRef"]["name"] for s in scaled} | {"lc-ingest"}
    for deployment in of_kind(rendered, "Deployment"):
        assert ("replicas" in deployment["spec"]) == (deployment["metadata"]["name"] not in owned)


@pytest.mark.parametrize(("overrides", "message"), [
    (["stageEngine.consumer.autoscaling.maxReplicas=13"], "exceeds the partitions"),
    (["kafka.partitions.stageTransitions=4", "messaging.consumer.autoscaling.maxReplicas=5"], "exceeds the partitions"),
    (["kafka.partitions.stageTransitions=4", "loyalty.consumer.autoscaling.maxReplicas=5"], "exceeds the partitions"),
])
def test_a_consumer_max_above_its_partitions_fails_the_render(helm: Path, overrides: list[str], message: str):
    result = template(helm, None, *overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_max_replicas_equal_to_the_partitions_renders(helm: Path):
    objects = render(helm, None, "kafka.partitions.touchpoints=4", "stageEngine.consumer.autoscaling.maxReplicas=4",
                     "messaging.consumer.autoscaling.maxReplicas=4", "loyalty.consumer.autoscaling.maxReplicas=4")
    assert {s["spec"]["maxReplicaCount"] for s in of_kind(objects, "ScaledObject")} == {4}


def test_without_keda_the_consumers_keep_a_fixed_replica_count(helm: Path):
    objects = render(helm, None, "keda.enabled=false", "stageEngine.consumer.replicas=3")
    assert not of_kind(objects, "ScaledObject")
    replicas = {d["metadata"]["name"]: d["spec"].get("replicas") for d in of_kind(objects, "Deployment")}
    assert replicas["lc-stage-engine-consumer"] == 3


# --- the operators -------------------------------------------------------------------------------


def test_operators_example_wires_the_services_to_strimzi_and_cloudnativepg(helm: Path):
    objects = render(helm, CHART / "examples" / "operators.yaml")
    assert {o["kind"] for o in objects} >= {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster",
                                            "Database"}
    (pool,) = of_kind(objects, "KafkaNodePool")
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}  # KRaft: no ZooKeeper
    assert {d["spec"]["name"] for d in of_kind(objects, "Database")} == {
        "lifecycle_ingest", "lifecycle_stage_engine", "lifecycle_messaging", "lifecycle_loyalty"}
    config = {c["metadata"]["name"]: c["data"] for c in of_kind(objects, "ConfigMap")}
    assert config["lc-ingest"]["LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS"] == "lifecycle-kafka-kafka-bootstrap:9092"
    assert not [j for j in of_kind(objects, "Job") if j["metadata"]["name"].startswith("lc-topics")]  # KafkaTopic
    for _, spec in pod_specs(objects):
        for container in spec["containers"]:
            refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", []) if "valueFrom" in e}
            if any(e["name"].endswith("DATABASE_URL") for e in container.get("env", [])):
                assert "lifecycle-pg-app" in refs  # CloudNativePG's application user


def test_external_example_reads_each_database_url_from_its_own_secret(helm: Path):
    objects = render(helm, CHART / "examples" / "external.yaml")
    assert not {o["kind"] for o in objects} & {"Kafka", "Cluster", "KafkaTopic"}
    urls = {}
    for name, spec in pod_specs(of_kind(objects, "Deployment")):
        for env in spec["containers"][0]["env"]:
            if env["name"].endswith("DATABASE_URL"):
                urls[name] = env["valueFrom"]["secretKeyRef"]["name"]
    assert len(set(urls.values())) == 4  # one database per service


# --- the chart agrees with the code --------------------------------------------------------------


async def declared_consumers() -> dict[str, set[tuple[str, str]]]:
    """(consumer group, topic) pairs per service, from each service's own build_runtime in the consumer role."""
    from lifecycle_loyalty.main import build_runtime as loyalty
    from lifecycle_loyalty.settings import LoyaltySettings
    from lifecycle_messaging.main import build_runtime as messaging
    from lifecycle_messaging.settings import MessagingSettings
    from lifecycle_stage_engine.main import build_runtime as stage_engine
    from lifecycle_stage_engine.rulebook import RuleBook
    from lifecycle_stage_engine.settings import StageEngineSettings

    runtimes = {
        "stage-engine": stage_engine(StageEngineSettings(environment="development", role="consumer"), RuleBook()),
        "messaging": messaging(MessagingSettings(environment="development", role="consumer")),
        "loyalty": loyalty(LoyaltySettings(environment="development", role="consumer")),
    }
    found = {name: {(spec.group, topic) for spec in runtime._consumer_specs for topic in spec.topics}
             for name, runtime in runtimes.items()}
    for runtime in runtimes.values():
        await runtime.engine.dispose()
    return found


def test_keda_watches_the_groups_and_topics_the_services_consume(helm: Path):
    objects = render(helm, None)
    watched = {s["spec"]["scaleTargetRef"]["name"].removeprefix("lc-").removesuffix("-consumer"):
               {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in s["spec"]["triggers"]}
               for s in of_kind(objects, "ScaledObject")}
    assert watched == asyncio.run(declared_consumers())
    assert {service: {topic for _, topic in pairs} for service, pairs in watched.items()} == CONSUMER_TOPICS


def test_each_service_runs_its_module_on_its_port(helm: Path):
    from lifecycle_devstack.services import SERVICES

    objects = render(helm, None)
    config = {c["metadata"]["name"]: c["data"] for c in of_kind(objects, "ConfigMap")}
    ports = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in of_kind(objects, "Service")}
    commands = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["command"]
                for d in of_kind(objects, "Deployment")}
    for service in SERVICES:
        assert config[f"lc-{service.name}"][f"{service.env_prefix}PORT"] == str(service.default_port)
        assert config[f"lc-{service.name}"][f"{service.env_prefix}HOST"] == "0.0.0.0"
        assert ports[f"lc-{service.name}"] == service.default_port
        deployments = [name for name in commands if name.removeprefix("lc-").startswith(service.name)]
        assert deployments and all(commands[name][:3] == ["python", "-m", service.module] for name in deployments)


@pytest.mark.parametrize("values", EXAMPLES, ids=lambda p: p.stem)
def test_names_fit_kubernetes_and_stay_distinct_with_the_longest_release_name(helm: Path, values: Path):
    release = "a" * 53  # the longest name Helm accepts
    result = helm_run(helm, "template", release, str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values))
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(set(names)) == len(names)
    assert max(len(name) for _, name in names) <= 63
