"""Each service, freshly started as its own process on a real PostgreSQL and broker, serves at `/metrics`
every series the alerts and the dashboard read (deploy/observability), before any traffic: the dead-letter
count per consumed type at 0, the outbox's backlog and oldest age, the HTTP counters (the readiness
probes' own requests), the domain counters. No label value is personal data."""

from __future__ import annotations

import re

import httpx
import pytest
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import SERVICES, ServiceProcess
from prometheus_client.parser import text_string_to_metric_families

SHARED = {"lifecycle_http_requests_total", "lifecycle_http_request_duration_seconds_bucket"}
CONSUMING = {"lifecycle_events_consumed_total", "lifecycle_consumer_lag"}
OUTBOX = {"lifecycle_outbox_backlog", "lifecycle_outbox_oldest_age_seconds"}  # who publishes through one
EXPECTED: dict[str, set[str]] = {
    "ingest": SHARED | {"lifecycle_ingest_events_total"},
    "stage-engine": SHARED | CONSUMING | OUTBOX | {"lifecycle_stage_engine_transitions_total"},
    "messaging": SHARED | CONSUMING | {"lifecycle_messaging_messages_sent_total",
                                       "lifecycle_messaging_messages_suppressed_total"},
    "loyalty": SHARED | CONSUMING | OUTBOX | {"lifecycle_loyalty_points_earned_total",
                                              "lifecycle_loyalty_points_spent_total"},
}
# Consumed event types whose dead-letter count must be there at 0 from the start (the stage engine routes
# touchpoints by prefix: its types count as `other`).
DEAD_LETTER_TYPES = {"stage-engine": "other", "messaging": "lifecycle.stage_changed",
                     "loyalty": "lifecycle.stage_changed"}
PERSONAL = re.compile(r"@|lc_[sw]k_|customer-|visitor-")


@pytest.fixture(scope="module")
def fresh_services(infra: Infra, tmp_path_factory):
    config = infra.stack_config()
    infra.prepare(config)
    logs = tmp_path_factory.mktemp("metrics-logs")
    processes = [ServiceProcess(service, config, logs / f"{service.name}.log") for service in SERVICES]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready()
        yield {process.service.name: process for process in processes}
    finally:
        for process in processes:
            process.stop()


@pytest.mark.parametrize("service", list(EXPECTED))
def test_a_fresh_service_exports_every_named_series(fresh_services, service: str) -> None:
    text = httpx.get(fresh_services[service].url + "/metrics", timeout=10).text
    samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    names = {sample.name for sample in samples}
    missing = EXPECTED[service] - names
    assert not missing, f"{service} lacks {sorted(missing)}"
    routes = {s.labels["route"] for s in samples if s.name == "lifecycle_http_requests_total"}
    assert "/readyz" in routes  # the route template, counted from the first probe
    if service in DEAD_LETTER_TYPES:
        dead = [s for s in samples if s.name == "lifecycle_events_consumed_total"
                and s.labels["outcome"] == "dead_lettered" and s.labels["type"].startswith(DEAD_LETTER_TYPES[service])]
        assert dead and all(s.value == 0 for s in dead), dead
    for sample in samples:
        assert not any(PERSONAL.search(value) for value in sample.labels.values()), sample
