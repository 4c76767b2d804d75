"""The Prometheus alert rules and the Grafana dashboard in deploy/observability: the rules pass
`promtool check rules` and their unit tests (`promtool test rules`, real promtool, installed by
lifecycle_devstack.prom_tools when missing), and every metric the dashboard and the rules read is one the
services export (their registries, imported)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from lifecycle_devstack.prom_tools import ensure_promtool
from prometheus_client import REGISTRY

OBSERVABILITY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
# Series Prometheus makes itself, not the services.
PROMETHEUS_OWN = {"up"}


@pytest.fixture(scope="module")
def promtool() -> Path:
    return ensure_promtool()


def exported_names() -> set[str]:
    """Every sample name the four services' metrics can produce (a family with no series yet included)."""
    import lifecycle_loyalty.metrics  # noqa: F401 - each registers its metrics on import
    import lifecycle_messaging.metrics  # noqa: F401
    import lifecycle_messaging.workers.webhooks  # noqa: F401
    import lifecycle_shared.metrics  # noqa: F401
    import lifecycle_stage_engine.metrics  # noqa: F401

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {family.name + suffix for family in REGISTRY.collect()
            for suffix in suffixes.get(family.type, ("",))}


def names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(lifecycle_[a-z0-9_]+)\b", expr)) | ({"up"} if re.search(r"\bup\s*\{", expr) else set())


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_the_alert_rules_pass_promtool_check(promtool: Path) -> None:
    result = subprocess.run([str(promtool), "check", "rules", str(OBSERVABILITY / "alerts.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_unit_tests_pass(promtool: Path) -> None:
    result = subprocess.run([str(promtool), "test", "rules", "alerts.test.yml"], cwd=OBSERVABILITY,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_queries_read_only_metrics_the_services_export(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else rule_exprs()
    assert exprs
    read = set().union(*(names_in(expr) for expr in exprs))
    unknown = read - exported_names() - PROMETHEUS_OWN
    assert not unknown, f"{source} reads metrics no service exports: {sorted(unknown)}"


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    tests = yaml.safe_load((OBSERVABILITY / "alerts.test.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    firing = {case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    assert alerts == firing
