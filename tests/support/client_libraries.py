"""What the client-library tests check on the running services: the events on the touchpoints topic, the
profile they make (the person's name, never the group's), and where the Node.js clients are installed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from lifecycle_shared.testing import eventually, read_topic

from tests.support.pipeline import Pipeline

NODE_DIR = Path(__file__).parent.parent / "clients" / "node"
PERSON_NAME = "Ann Example"  # the person, on identify
GROUP_NAME = "Acme Industries"  # the company, on group: must never become the person's name


@dataclass
class Published:
    """The touchpoints ingest published for some messageIds (CloudEvent data, keyed by messageId)."""

    by_message_id: dict[str, dict]


async def published(stack: Pipeline, message_ids: set[str], *, timeout_s: float = 30) -> Published:
    """Wait until every one of `message_ids` is on the touchpoints topic; their touchpoints."""
    topic = stack.config.topic_prefix + "touchpoints.v1"
    found: dict[str, dict] = {}

    async def all_there():
        records = await read_topic(stack.config.kafka_bootstrap, topic, timeout_s=5)
        for record in records:
            data = json.loads(record.value).get("data") or {}
            if data.get("messageId") in message_ids:
                found[data["messageId"]] = data
        return found if set(found) == message_ids else None

    try:
        await eventually(all_there, timeout_s=timeout_s, interval_s=0.5, what="every event on the touchpoints topic")
    except AssertionError as error:
        raise AssertionError(f"missing from the touchpoints topic: {sorted(message_ids - set(found))}") from error
    return Published(found)


async def profile_when(stack: Pipeline, customer: str, ready, *, what: str, timeout_s: float = 30) -> dict:
    """The stage engine's profile of `customer` once `ready(profile)` holds (read with the API token)."""
    async with stack.client() as client:
        async def probe():
            profile = await stack.get(client, "stage-engine", f"/v1/customers/{customer}")
            return profile if profile and ready(profile) else None

        return await eventually(probe, timeout_s=timeout_s, what=what)


def assert_person_profile(profile: dict, *, user_id: str, anonymous_id: str | None, email: str,
                          stage: str, orders: int, revenue: float | None = None) -> None:
    """The customer's profile shows the events: identity merged, the person's traits (never the group's
    name), the stage the events lead to, the orders counted."""
    assert profile["customer_id"] == user_id and profile["user_id"] == user_id, profile
    if anonymous_id is not None:
        assert anonymous_id in profile["anonymous_ids"], profile
    assert profile["traits"].get("email") == email, profile
    assert profile["traits"].get("name") == PERSON_NAME, profile
    assert GROUP_NAME not in json.dumps(profile["traits"]), profile
    assert profile["stage"] == stage, profile
    assert profile["orders"] == orders, profile
    if revenue is not None:
        assert profile["revenue"] == pytest.approx(revenue), profile
