"""Time-based stages and rules as data against real PostgreSQL: the sweeper with an injected clock
(two sweepers at once never move a customer twice), and the admin API (rule sets put in force,
immutable versions, dry runs that store nothing)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_devstack.services import BY_NAME
from lifecycle_ingest.publisher import to_cloud_event
from lifecycle_shared.db import create_engine, outbox
from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.testing import eventually
from lifecycle_shared.topics import Topics
from lifecycle_stage_engine.db import reads
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES
from lifecycle_stage_engine.handlers import routes
from lifecycle_stage_engine.workers.sweeper import sweep_once
from sqlalchemy import func, select

from tests.support.kafka_records import record
from tests.support.stage_engine import stage_engine_client

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ADMIN = "stage-admin-token-71c3e9d0a54b28f6"
API = "stage-api-token-0d4f8b2e19a7c653"


async def bought(namespace, users: list[str], *, at: datetime) -> None:
    """Each user places one order at `at`."""
    engine = create_engine(namespace.database_url(BY_NAME["stage-engine"]))
    route = routes(topics=Topics(namespace.topic_prefix), rules=lambda: DEFAULT_RULES, clock=lambda: at)
    runner = ConsumerRunner(name="stage-test", consumer=None, producer=None, engine=engine, route=route)
    events = [to_cloud_event(TouchpointData(type="track", event="Order Completed", userId=user, messageId=f"{user}-o1",
                                            properties={"order_id": "o1", "revenue": 10}, timestamp=at, receivedAt=at),
                             source="tests") for user in users]
    try:
        await runner.process([record("touchpoints", i, e.to_bytes(), key=e.subject.encode())
                              for i, e in enumerate(events)])
    finally:
        await engine.dispose()


async def stages_of(engine, user: str) -> list[tuple[str | None, str, datetime]]:
    async with engine.connect() as conn:
        profile, _ = await reads.find_profile(conn, customer_id=user)
        return [(t["from_stage"], t["to_stage"], t["event_time"])
                for t in await reads.history_of(conn, profile_id=profile.id)]


async def test_two_sweepers_at_once_move_each_buyer_once_at_the_moment_their_days_ran_out(namespace):
    users = [f"sweep-{uuid.uuid4().hex[:8]}" for _ in range(60)]
    await bought(namespace, users, at=T0)
    url = namespace.database_url(BY_NAME["stage-engine"])
    one, two = create_engine(url), create_engine(url)
    topic = Topics(namespace.topic_prefix).stage_transitions
    try:
        for days, stage in ((91, "at_risk"), (200, "lapsed")):
            now = T0 + timedelta(days=days)
            while sum(await asyncio.gather(*(sweep_once(e, rules=DEFAULT_RULES, now=now, topic=topic, limit=7)
                                             for e in (one, two)))):
                pass
            for user in users[:5]:
                history = await stages_of(one, user)
                assert history[-1][1] == stage, history
        for user in users:
            assert await stages_of(one, user) == [
                (None, "purchase", T0), ("purchase", "at_risk", T0 + timedelta(days=90)),
                ("at_risk", "lapsed", T0 + timedelta(days=180))]
        async with one.connect() as conn:  # each move announced once (the outbox keeps them: no relay runs here)
            announced = (await conn.execute(select(outbox.c.event_id, func.count()).where(
                outbox.c.topic == topic, outbox.c.key.in_(users)).group_by(outbox.c.event_id))).all()
        assert all(count == 1 for _, count in announced) and len(announced) == 3 * len(users)
        # Sweeping again finds nothing due until something changes.
        assert await sweep_once(one, rules=DEFAULT_RULES, now=T0 + timedelta(days=400), topic=topic) == 0
    finally:
        await one.dispose()
        await two.dispose()


@pytest.fixture(scope="module")
async def engine_api(namespace):
    async with stage_engine_client(namespace, api_token=API, admin_token=ADMIN, sends=ADMIN) as client:
        yield client


async def test_a_rule_set_is_put_in_force_versions_are_immutable_and_nonsense_is_refused(engine_api):
    default = (await engine_api.get("/v1/admin/rules")).json()
    assert default["version"] == DEFAULT_RULES.version and default["drift"]["one_time_at_risk_days"] == 90
    version = f"t-{uuid.uuid4().hex[:6]}"
    try:
        put = await engine_api.put("/v1/admin/rules", json={"version": version, "loyalty_min_orders": 3})
        assert put.status_code == 200, put.text
        in_force = (await engine_api.get("/v1/admin/rules")).json()
        assert (in_force["version"], in_force["loyalty_min_orders"], in_force["min_review_rating"]) == (version, 3, 4)
        again = await engine_api.put("/v1/admin/rules", json={"version": version, "loyalty_min_orders": 4})
        assert again.status_code == 409 and "new version" in again.json()["message"]
        for nonsense in ({"version": "x", "intent_events": ["Product Viewed"]},  # names are snake_case
                         {"version": "x", "drift": {"at_risk_factor": 5, "lapsed_factor": 2}},
                         {"version": "x", "content": {"vip": "x"}}, {"version": "has space"}, {"version": "x", "y": 1}):
            refused = await engine_api.put("/v1/admin/rules", json=nonsense)
            assert refused.status_code == 400, (nonsense, refused.text)
    finally:
        assert (await engine_api.put("/v1/admin/rules", json=default)).status_code == 200
    assert (await engine_api.get("/v1/admin/rules")).json() == default
    assert (await engine_api.get("/v1/admin/rules", headers={"authorization": f"Bearer {API}"})).status_code == 401


async def test_a_dry_run_reports_what_other_rules_would_change_and_stores_nothing(engine_api, namespace):
    users = [f"dry-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    recent = datetime.now(UTC) - timedelta(days=1)
    await bought(namespace, users, at=recent)
    body = {"scope": {"customer_id": users[0]}, "dry_run": True,
            "rules": {"version": "impatient", "drift": {"one_time_at_risk_days": 0.5, "one_time_lapsed_days": 0.5}}}
    job = (await engine_api.post("/v1/admin/replays", json=body)).json()
    assert (job["status"], job["total"], job["rule_version"]) == ("queued", 1, "impatient")

    async def finished():
        found = (await engine_api.get(f"/v1/admin/replays/{job['id']}")).json()
        return found if found["status"] == "done" else None

    report = (await eventually(finished, what="the dry run"))["result"]
    assert report["moves"] == {"purchase->lapsed": 1} and report["examples"] == {"purchase->lapsed": [users[0]]}
    assert (report["transitions_added"], report["transitions_superseded"]) == (1, 0)
    profile = (await engine_api.get(f"/v1/customers/{users[0]}", headers={"authorization": f"Bearer {API}"})).json()
    assert profile["stage"] == "purchase"  # nothing stored
    refused = await engine_api.post("/v1/admin/replays", json={**body, "dry_run": False})
    assert refused.status_code == 409  # a replay runs the rules in force only
    assert (await engine_api.get("/v1/admin/replays/not-a-job")).status_code == 404
