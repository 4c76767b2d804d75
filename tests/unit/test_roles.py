"""`serve --role api|consumer|all`: what each role's app routes and its runtime runs, and what its readiness
asks for (no I/O: nothing connects before the runtime starts)."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from lifecycle_ingest.main import create_app as create_ingest
from lifecycle_ingest.settings import IngestSettings
from lifecycle_shared import cli
from lifecycle_stage_engine.main import build_runtime
from lifecycle_stage_engine.main import create_app as create_stage_engine
from lifecycle_stage_engine.rulebook import RuleBook
from lifecycle_stage_engine.settings import StageEngineSettings


def paths(app) -> set[str]:
    """What the app answers: its documented paths, and /metrics (undocumented) when it answers it (the probes
    and /metrics need no running runtime: no lifespan here)."""
    metrics = TestClient(app).get("/metrics").status_code == 200
    return set(app.openapi()["paths"]) | ({"/metrics"} if metrics else set())


def stage_settings(role: str) -> StageEngineSettings:
    return StageEngineSettings(environment="development", role=role)


def test_serve_takes_a_role_and_defaults_to_the_settings() -> None:
    assert cli._serve_options(["--role", "api"]).role == "api"
    assert cli._serve_options([]).role is None
    with pytest.raises(SystemExit):
        cli._serve_options(["--role", "reader"])


def test_the_role_defaults_to_all_and_reads_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stage_settings("all").role == StageEngineSettings(environment="development").role == "all"
    monkeypatch.setenv("LIFECYCLE_STAGE_ENGINE_ROLE", "consumer")
    assert StageEngineSettings(environment="development").role == "consumer"


@pytest.mark.parametrize("role", ["api", "all"])
def test_roles_that_serve_the_api_route_it(role: str) -> None:
    assert {"/v1/customers/{customer_id}", "/healthz", "/readyz", "/metrics"} <= paths(create_stage_engine(
        stage_settings(role)))


def test_the_consumer_role_serves_only_the_probes_and_metrics() -> None:
    served = paths(create_stage_engine(stage_settings("consumer")))
    assert {"/healthz", "/readyz", "/metrics"} <= served
    assert not any(path.startswith("/v1/") or path == "/dashboard" for path in served)
    assert not any(path.startswith("/v1/") for path in paths(create_ingest(
        IngestSettings(environment="development", role="consumer"))))


def runtime_parts(role: str) -> tuple[int, bool, set[str], set[str]]:
    async def build():
        runtime = build_runtime(stage_settings(role), RuleBook())
        return (len(runtime._consumer_specs), runtime.relay is not None,
                {worker.__name__ for worker in runtime._workers}, runtime._needs)

    return asyncio.run(build())


def test_the_api_role_runs_no_consumer_relay_or_worker_but_keeps_the_rules_fresh() -> None:
    assert runtime_parts("api") == (0, False, {"rules_poll"}, {"database"})


@pytest.mark.parametrize("role", ["consumer", "all"])
def test_the_consumer_side_runs_everything_and_needs_database_broker_and_topics(role: str) -> None:
    consumers, relay, workers, needs = runtime_parts(role)
    assert consumers == 1 and relay and {"rules_poll", "stage_sweeper", "analytics"} <= workers
    assert needs == {"database", "broker", "topics"}
