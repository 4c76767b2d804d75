"""The rendered chart's topics, autoscaling and operators, and its agreement with the services' code (the groups and
topics they consume, their modules and ports, names that fit Kubernetes)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm_chart import (
    CHART,
    CONSUMER_TOPICS,
    EXAMPLES,
    KUBE_VERSION,
    helm_run,
    of_kind,
    pod_specs,
    render,
    template,
)

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
    """(consumer group, topic) pairs per service, from each service's own build_runtime in the role its consumers
    run in (ingest's: `all`, its one Deployment)."""
    from lifecycle_ingest.main import build_runtime as ingest
    from lifecycle_ingest.settings import IngestSettings
    from lifecycle_loyalty.main import build_runtime as loyalty
    from lifecycle_loyalty.settings import LoyaltySettings
    from lifecycle_messaging.campaignbook import CampaignBook
    from lifecycle_messaging.main import build_runtime as messaging
    from lifecycle_messaging.settings import MessagingSettings
    from lifecycle_shared.keyring import KeyCache
    from lifecycle_stage_engine.main import build_runtime as stage_engine
    from lifecycle_stage_engine.rulebook import RuleBook
    from lifecycle_stage_engine.settings import StageEngineSettings

    runtimes = {
        "ingest": ingest(IngestSettings(environment="development", role="all"), KeyCache()),
        "stage-engine": stage_engine(StageEngineSettings(environment="development", role="consumer"), RuleBook()),
        "messaging": messaging(MessagingSettings(environment="development", role="consumer"), CampaignBook()),
        "loyalty": loyalty(LoyaltySettings(environment="development", role="consumer")),
    }
    found = {name: {(spec.group, topic) for spec in runtime._consumer_specs for topic in spec.topics}
             for name, runtime in runtimes.items()}
    for runtime in runtimes.values():
        await runtime.engine.dispose()
    return found


@functools.cache
def consumed() -> dict[str, set[tuple[str, str]]]:
    return asyncio.run(declared_consumers())


def test_keda_watches_the_groups_and_topics_the_services_consume(helm: Path):
    objects = render(helm, None)
    watched = {s["spec"]["scaleTargetRef"]["name"].removeprefix("lc-").removesuffix("-consumer"):
               {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in s["spec"]["triggers"]}
               for s in of_kind(objects, "ScaledObject")}
    declared = dict(consumed())
    # Ingest's erasure consumer runs in its one Deployment, scaled on CPU (the HPA), not by KEDA.
    assert declared.pop("ingest") == {("ingest", "stage-transitions.v1")}
    assert watched == declared
    assert {service: {topic for _, topic in pairs} for service, pairs in watched.items()} == CONSUMER_TOPICS


def test_each_kafka_user_may_read_what_its_service_consumes_and_dead_letter_it(helm: Path):
    """The KafkaUsers' read and group ACLs are exactly the (group, topic) pairs each service's code consumes, with
    a write ACL on each read topic's dead-letter topic, and the producers write their own topic."""
    objects = render(helm, CHART / "examples" / "operators.yaml")
    acls = {u["metadata"]["name"].removeprefix("lc-"): u["spec"]["authorization"]["acls"]
            for u in of_kind(objects, "KafkaUser")}

    def named(service: str, kind: str, operation: str) -> set[str]:
        return {a["resource"]["name"] for a in acls[service]
                if a["resource"]["type"] == kind and operation in a["operations"]}

    declared = consumed()
    assert set(acls) == set(declared)
    for service, pairs in declared.items():
        assert named(service, "group", "Read") == {group for group, _ in pairs}, service
        read = {topic for _, topic in pairs}
        assert named(service, "topic", "Read") == read, service
        assert {f"{topic}.dlq" for topic in read} <= named(service, "topic", "Write"), service
    produced = {"ingest": "touchpoints.v1", "stage-engine": "stage-transitions.v1", "loyalty": "loyalty-events.v1"}
    for service, topic in produced.items():
        assert topic in named(service, "topic", "Write"), service


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


def test_tracing_exports_to_the_collector_only_when_asked_and_the_policies_let_it(helm: Path):
    """Off by default: no OTEL_* variable and no egress to a collector. The operators example turns it on: every
    service exports as lifecycle-<service> to the endpoint with the sampler, and every app pod (not a Job) may
    reach the collector's port in the monitoring namespace."""
    off = render(helm, None)
    assert not [k for c in of_kind(off, "ConfigMap") for k in c.get("data", {}) if k.startswith("OTEL_")]
    on = render(helm, CHART / "examples" / "operators.yaml")
    config = {c["metadata"]["name"]: c["data"] for c in of_kind(on, "ConfigMap") if "OTEL_SERVICE_NAME" in c["data"]}
    assert {name: data["OTEL_SERVICE_NAME"] for name, data in config.items()} == {
        "lc-ingest": "lifecycle-ingest", "lc-stage-engine": "lifecycle-stage-engine",
        "lc-messaging": "lifecycle-messaging", "lc-loyalty": "lifecycle-loyalty"}
    for data in config.values():
        assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4318"
        assert (data["OTEL_TRACES_SAMPLER"], data["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "0.2")
    collector = {"ports": [{"port": 4318, "protocol": "TCP"}],
                 "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}
    policies = {p["metadata"]["name"]: p["spec"]["egress"] for p in of_kind(on, "NetworkPolicy")}
    apps = {d["metadata"]["name"] for d in of_kind(on, "Deployment")}
    assert apps and all(collector in policies[name] for name in apps)
    assert all(collector not in egress for name, egress in policies.items() if name not in apps)
