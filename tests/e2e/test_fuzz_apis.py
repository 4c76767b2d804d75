"""Schemathesis over every service's OpenAPI, against the running services over real HTTP:
schema-valid and schema-violating requests (bodies included: ingest documents them), and not one
server error, undocumented status, wrong content type or response outside its schema. Whatever
ingest accepted meanwhile is applied downstream without a single new dead letter.

Bounded: MAX_EXAMPLES per operation and generation mode (LIFECYCLE_FUZZ_EXAMPLES overrides it for a
deeper run), derandomized (the same requests each run while the code is unchanged), no shrinking.
The number of requests and the answers by status code are printed.
"""

from __future__ import annotations

import base64
import os
import time
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from lifecycle_shared.sealing import keys_token
from lifecycle_shared.testing import read_topic
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
MAX_EXAMPLES = int(os.environ.get("LIFECYCLE_FUZZ_EXAMPLES", "40"))  # raise it for a deeper local run
SERVICES = ["ingest", "stage-engine", "messaging", "loyalty"]


def fuzz(base_url: str, credentials: dict[str, str]) -> tuple[int, Counter, list[str]]:
    """(operations, answers by status code, failures) for every operation of the service at `base_url`."""
    schema = schemathesis.openapi.from_url(
        base_url + "/openapi.json",
        config=schemathesis.Config.from_dict({"generation": {"allow-extra-parameters": False}}))
    operations, answers, failures = 0, Counter(), []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        schemes = [name for requirement in operation.definition.raw.get("security", []) for name in requirement]
        headers = {"Authorization": credentials[schemes[0]]} if schemes else {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _fuzz_operation(operation, mode, headers, answers)
            failures += [failure] if failure else []
    return operations, answers, failures


def _fuzz_operation(operation, mode: GenerationMode, headers: dict[str, str], answers: Counter) -> str | None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None, phases=[Phase.explicit, Phase.generate])
    def call(case) -> None:
        response = case.call(headers=headers, timeout=15)
        answers[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        call()
    except Unsatisfiable:  # nothing to violate: no parameters, no body (a negative run of GET /healthz)
        return None
    except Exception as failure:  # noqa: BLE001 - reported, and every other operation still fuzzed
        return f"{operation.label} ({mode.value}): {failure}"[:3000]
    return None


@pytest.mark.parametrize("service", SERVICES)
def test_fuzzing_finds_no_server_error_and_no_schema_violation(pipeline, service, capsys):
    credentials = {"WriteKey": "Basic " + base64.b64encode(f"{pipeline.write_key}:".encode()).decode(),
                   "AdminToken": f"Bearer {pipeline.admin_token}", "ApiToken": f"Bearer {pipeline.api_token}",
                   # ingest's key API (docs/erasure.md): the token the services derive from the pepper
                   "KeysToken": f"Bearer {keys_token(pipeline.config.erasure_pepper.encode())}"}
    dead_before = _dead_letters(pipeline)
    admin = {"authorization": credentials["AdminToken"]}
    # The stage engine's and loyalty's rule sets in force, by URL.
    rules_urls = [pipeline.url(name) + "/v1/admin/rules" for name in ("stage-engine", "loyalty")]
    rules_in_force = {url: httpx.get(url, headers=admin, timeout=10).json() for url in rules_urls}
    campaigns_url = pipeline.url("messaging") + "/v1/admin/campaigns"
    campaigns = _campaigns(campaigns_url, admin)
    try:
        operations, answers, failures = fuzz(pipeline.url(service), credentials)
    finally:  # the fuzzer puts rule sets in force and makes campaigns: the tests after it get the defaults back
        for url, rules in rules_in_force.items():
            assert httpx.put(url, json=rules, headers=admin, timeout=10).status_code == 200
        _restore_campaigns(campaigns_url, campaigns, admin)
    with capsys.disabled():
        print(f"\nfuzz {service}: {answers.total()} requests over {operations} operations, {len(failures)} failing; "
              f"answers {dict(sorted(answers.items()))}")
    assert operations and answers.total() >= MAX_EXAMPLES and answers[200] + answers[201] > 0
    assert failures == [], "\n\n".join(failures)
    if service == "ingest":
        _wait_until_consumers_settle(pipeline)
        assert _dead_letters(pipeline) == dead_before, "an event ingest accepted was dead-lettered downstream"


# What a campaign's answer holds beyond its definition.
_CAMPAIGN_STATE = {"id", "version", "origin", "created_at", "updated_at", "deleted_at", "versions"}


def _campaigns(url: str, admin: dict[str, str]) -> dict[str, dict]:
    answer = httpx.get(url, params={"include_deleted": "true"}, headers=admin, timeout=10)
    assert answer.status_code == 200, answer.text
    return {c["id"]: c for c in answer.json()}


def _restore_campaigns(url: str, before: dict[str, dict], admin: dict[str, str]) -> None:
    """The campaigns as they were: those the fuzzer made deleted, those it changed put back (a new version each)."""
    for campaign_id, now in _campaigns(url, admin).items():
        was = before.get(campaign_id)
        if was is not None and (was["version"], was["deleted_at"]) == (now["version"], now["deleted_at"]):
            continue
        if was is not None:
            definition = {k: v for k, v in was.items() if k not in _CAMPAIGN_STATE}
            assert httpx.put(f"{url}/{campaign_id}", json=definition, headers=admin, timeout=10).status_code == 200
        if was is None or was["deleted_at"] is not None:
            httpx.delete(f"{url}/{campaign_id}", headers=admin, timeout=10)


def _dead_letters(pipeline) -> int:
    import asyncio

    topics = [pipeline.config.topic_prefix + t for t in ("touchpoints.v1.dlq", "stage-transitions.v1.dlq")]
    return sum(len(asyncio.run(read_topic(pipeline.config.kafka_bootstrap, topic, timeout_s=3))) for topic in topics)


def _wait_until_consumers_settle(pipeline, quiet_s: float = 3, timeout_s: float = 90) -> None:
    """Until no consumer has taken an event for `quiet_s` (everything accepted has been applied)."""
    def consumed() -> float:
        total = 0.0
        for service in ("stage-engine", "messaging", "loyalty"):
            text = httpx.get(pipeline.url(service) + "/metrics", timeout=10).text
            total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith("lifecycle_events_consumed_total{"))
        return total

    deadline, last, since = time.monotonic() + timeout_s, consumed(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = consumed()
        if now != last:
            last, since = now, time.monotonic()
