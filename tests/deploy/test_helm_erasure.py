"""The chart and crypto-shredding (docs/erasure.md): the pepper in all four services by reference only, ingest's key
API and erasure report wired to the pods that call them (LIFECYCLE_KEYS_URL, LIFECYCLE_STAGE_ENGINE_INGEST_URL),
and the NetworkPolicies letting exactly those pods reach ingest."""

from __future__ import annotations

from typing import Any

from tests.support.helm_chart import of_kind, pod_specs

SERVICES = ("ingest", "stage-engine", "messaging", "loyalty")
NAMESPACE = "shop"  # the namespace tests.support.helm_chart.template renders into


def service_containers(objects: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, service, container) for every app and migration container."""
    found = []
    for owner in objects:
        if owner["kind"] not in ("Deployment", "Job"):
            continue
        service = owner["spec"]["template"]["metadata"]["labels"].get("lifecycle.io/service")
        if service:
            for container in owner["spec"]["template"]["spec"]["containers"]:
                found.append((f"{owner['kind']}/{owner['metadata']['name']}", service, container))
    return found


def test_the_pepper_is_a_secret_reference_in_all_four_services(rendered: list[dict[str, Any]]):
    containers = service_containers(rendered)
    assert {service for _, service, _ in containers} == set(SERVICES)
    for where, _, container in containers:
        (pepper,) = [e for e in container["env"] if e["name"] == "LIFECYCLE_ERASURE_PEPPER"]
        assert "value" not in pepper, where
        assert pepper["valueFrom"]["secretKeyRef"] == {"name": "lifecycle-tokens", "key": "erasure-pepper"}, where
    for config_map in of_kind(rendered, "ConfigMap"):
        assert "LIFECYCLE_ERASURE_PEPPER" not in config_map["data"], config_map["metadata"]["name"]


def test_ingest_reads_the_read_api_tokens_for_its_erasure_report(rendered: list[dict[str, Any]]):
    for where, service, container in service_containers(rendered):
        if service == "ingest":
            (tokens,) = [e for e in container["env"] if e["name"] == "LIFECYCLE_API_TOKENS"]
            assert tokens["valueFrom"]["secretKeyRef"] == {"name": "lifecycle-tokens", "key": "api-tokens"}, where


def test_the_key_and_report_urls_are_ingests_service(rendered: list[dict[str, Any]]):
    (ingest,) = [s for s in of_kind(rendered, "Service") if s["metadata"]["name"] == "lc-ingest"]
    (deployment,) = [d for d in of_kind(rendered, "Deployment") if d["metadata"]["name"] == "lc-ingest"]
    assert ingest["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    url = f"http://lc-ingest:{ingest['spec']['ports'][0]['port']}"
    config = {c["metadata"]["name"]: c["data"] for c in of_kind(rendered, "ConfigMap")}
    for service in ("stage-engine", "messaging", "loyalty"):
        assert config[f"lc-{service}"]["LIFECYCLE_KEYS_URL"] == url, service
    assert config["lc-stage-engine"]["LIFECYCLE_STAGE_ENGINE_INGEST_URL"] == url
    assert "LIFECYCLE_KEYS_URL" not in config["lc-ingest"]  # ingest keeps the keys itself


# --- who may reach ingest ------------------------------------------------------------------------


def peer_covers(peer: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a NetworkPolicy peer may include a pod of this namespace with these labels. An ipBlock may hold a
    pod's address: counted as covering (the check below is then strict about who is let through)."""
    if "ipBlock" in peer:
        return True
    namespaces = peer.get("namespaceSelector")
    if namespaces is not None and not namespaces.get("matchLabels", {}).items() <= {
            "kubernetes.io/metadata.name": NAMESPACE}.items():
        return False
    pods = peer.get("podSelector", {}).get("matchLabels", {})
    return pods.items() <= labels.items()


def rules_allow(rules: list[dict[str, Any]], side: str, labels: dict[str, str], port: int) -> bool:
    for rule in rules:
        ports = {p["port"] for p in rule.get("ports", [])}
        if ports and port not in ports:
            continue
        if side not in rule or any(peer_covers(peer, labels) for peer in rule[side]):
            return True
    return False


def may_reach(policies: list[dict[str, Any]], source: dict[str, str], target: dict[str, str], port: int) -> bool:
    """Egress from the source's policy and ingress into the target's both allow the connection."""
    (out,) = [p["spec"] for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= source.items()]
    (into,) = [p["spec"] for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= target.items()]
    return rules_allow(out["egress"], "to", target, port) and rules_allow(into["ingress"], "from", source, port)


def ingest_callers(objects: list[dict[str, Any]]) -> set[str]:
    """The Deployments that call ingest, by their settings and role: those running consumers (they open sealed
    records, their relays seal) with LIFECYCLE_KEYS_URL, and the stage engine's API (the erasure report)."""
    config = {c["metadata"]["name"]: c["data"] for c in of_kind(objects, "ConfigMap")}
    callers = set()
    for deployment in of_kind(objects, "Deployment"):
        role = deployment["spec"]["template"]["metadata"]["labels"]["lifecycle.io/role"]
        (source,) = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        settings = config[source["configMapRef"]["name"]]
        if ("LIFECYCLE_KEYS_URL" in settings and role != "api") or \
                ("LIFECYCLE_STAGE_ENGINE_INGEST_URL" in settings and role != "consumer"):
            callers.add(deployment["metadata"]["name"])
    return callers


def test_exactly_the_pods_that_call_ingest_may_reach_its_port(rendered: list[dict[str, Any]]):
    policies = of_kind(rendered, "NetworkPolicy")
    (ingest,) = [d for d in of_kind(rendered, "Deployment") if d["metadata"]["name"] == "lc-ingest"]
    target = ingest["spec"]["template"]["metadata"]["labels"]
    port = ingest["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    callers = ingest_callers(rendered)
    assert callers == {"lc-stage-engine-api", "lc-stage-engine-consumer", "lc-messaging-consumer",
                       "lc-loyalty-consumer"}
    for owner in rendered:
        if owner["kind"] in ("Deployment", "Job") and owner["metadata"]["name"] != "lc-ingest":
            source = owner["spec"]["template"]["metadata"]["labels"]
            assert may_reach(policies, source, target, port) == (owner["metadata"]["name"] in callers), \
                owner["metadata"]["name"]


def test_ingest_runs_its_erasure_consumer_in_its_one_deployment(rendered: list[dict[str, Any]]):
    """`serve --role all`: the routes and the consumer that destroys an erased customer's keys; KEDA scales no ingest
    Deployment (the HPA on CPU does)."""
    specs = dict(pod_specs(of_kind(rendered, "Deployment")))
    assert specs["Deployment/lc-ingest"]["containers"][0]["command"][-2:] == ["--role", "all"]
    assert not [name for name in specs if name.startswith("Deployment/lc-ingest-")]
    assert "lc-ingest" not in {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(rendered, "ScaledObject")}
