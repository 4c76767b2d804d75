"""The stage engine's edges, found by attacking it (real PostgreSQL, the real runner, handlers, sweeper
and replay jobs; no Kafka): rule sets put in force move pending moments, recomputed histories announce a
new current stage and corrections have ids of their own, identity changes in one batch never collide on
a customer key, one customer's failure never stops the others, a sweeper and a merge never resurrect
a profile. Each test states the behaviour docs/lifecycle.md promises."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_devstack.services import BY_NAME
from lifecycle_ingest.publisher import to_cloud_event
from lifecycle_shared.db import create_engine, outbox
from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Typed
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.topics import Topics
from lifecycle_stage_engine import replays, rulebook
from lifecycle_stage_engine.db import reads
from lifecycle_stage_engine.db.models import replay_jobs
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES, RuleSet
from lifecycle_stage_engine.handlers import touchpoint_route
from lifecycle_stage_engine.handlers.touchpoints import handle_touchpoints
from lifecycle_stage_engine.sweeper import sweep_once
from sqlalchemy import select

from tests.integration.test_consumer_runner import record

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
API = "review-api-token-5b1e0c7d2a9f4e36"
ADMIN = "review-admin-token-8c2d4f6a1b3e5d70"


def _h() -> str:
    return uuid.uuid4().hex[:10]


def ev(kind: str, at: datetime, *, event: str | None = None, mid: str | None = None, **fields):
    data = TouchpointData(type=kind, event=event, messageId=mid or str(uuid.uuid4()), timestamp=at, receivedAt=at,
                          **fields)
    return to_cloud_event(data, source="tests")


def order(at: datetime, order_id: str, **ids):
    return ev("track", at, event="Order Completed", properties={"order_id": order_id, "revenue": 10}, **ids)


@pytest.fixture(scope="module")
async def engine(namespace):
    eng = create_engine(namespace.database_url(BY_NAME["stage-engine"]))
    yield eng
    await eng.dispose()


@pytest.fixture(scope="module")
def topic(namespace) -> str:
    return Topics(namespace.topic_prefix).stage_transitions


async def deliver(namespace, engine, events, *, now: datetime, rules: RuleSet = DEFAULT_RULES) -> None:
    """One polled batch through the real runner (inbox, handler, outbox; one transaction)."""
    route = touchpoint_route(Topics(namespace.topic_prefix), rules=lambda: rules, clock=lambda: now)
    runner = ConsumerRunner(name="review", consumer=None, producer=None, engine=engine, route=route)
    await runner.process([record("touchpoints", i, e.to_bytes(), key=(e.subject or "k").encode())
                          for i, e in enumerate(events)])


async def handle_directly(namespace, engine, events, *, now: datetime, rules: RuleSet = DEFAULT_RULES):
    """The handler on one batch in one transaction, without the runner's one-by-one fallback."""
    typed = [Typed(event=e, data=TouchpointData.model_validate(e.data)) for e in events]
    async with engine.begin() as conn:
        return await handle_touchpoints(conn, typed, topic=Topics(namespace.topic_prefix).stage_transitions,
                                        rules=lambda: rules, clock=lambda: now)


async def history(engine, customer: str) -> list[dict]:
    async with engine.connect() as conn:
        profile, _ = await reads.find_profile(conn, customer_id=customer)
        return await reads.history_of(conn, profile_id=profile.id)


async def profile_of(engine, customer: str):
    async with engine.connect() as conn:
        return (await reads.find_profile(conn, customer_id=customer))[0]


async def announced(engine, topic: str, keys: list[str]) -> list[dict]:
    """Every event the outbox holds for these keys, in outbox order (no relay runs here)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.event_id, outbox.c.key, outbox.c.payload)
                                   .where(outbox.c.topic == topic, outbox.c.key.in_(keys))
                                   .order_by(outbox.c.id))).all()
    return [{"id": r.event_id, "key": r.key, **json.loads(r.payload)} for r in rows]


async def run_jobs(engine, topic: str, now: datetime) -> None:
    while await replays.run_page(engine, topic=topic, now=now):
        pass


# --- 1. Rules change: drift moments stored under the old rules ----------------------------------------

async def test_shorter_drift_rules_move_due_customers_at_their_new_moment(namespace, engine, topic):
    """A rule set that makes buyers at-risk after 30 days instead of 90: the sweeper must move a
    buyer whose 30 days have run out (docs: the sweeper applies moves at their own moment; a new
    rule set is in force within 5 s). The stored due_at said day 90: putting rules in force makes the
    sweeper look at every pending moment again."""
    user = f"due-{_h()}"
    await deliver(namespace, engine, [order(T0, "o1", userId=user)], now=T0)
    shorter = RuleSet(version=f"short-{_h()}", drift={"one_time_at_risk_days": 30, "one_time_lapsed_days": 60})
    async with engine.begin() as conn:  # put in force as the admin API does
        assert await rulebook.activate(conn, shorter)
    try:
        await sweep_once(engine, rules=shorter, now=T0 + timedelta(days=40), topic=topic)
    finally:
        async with engine.begin() as conn:
            assert await rulebook.activate(conn, DEFAULT_RULES)
    moves = [(t["from_stage"], t["to_stage"], t["event_time"]) for t in await history(engine, user)]
    assert moves == [(None, "purchase", T0), ("purchase", "at_risk", T0 + timedelta(days=30))], moves


# --- 2/3. Replays A -> B -> A: a silent stage change and a colliding history_corrected id ---------------

async def _replayed_there_and_back(namespace, engine, topic) -> tuple[str, list[dict]]:
    user = f"rev-{_h()}"
    now = T0 + timedelta(days=10)
    await deliver(namespace, engine, [order(T0, "o1", userId=user)], now=T0)
    impatient = RuleSet(version=f"impatient-{_h()}", drift={"one_time_at_risk_days": 1, "one_time_lapsed_days": 2})
    for rules in (impatient, DEFAULT_RULES):  # put in force, replay; then back to the defaults, replay
        async with engine.begin() as conn:
            await replays.create_job(conn, scope={"customer_id": user}, rules=rules, dry_run=False)
        await run_jobs(engine, topic, now)
    return user, await announced(engine, topic, [user])


async def test_a_replay_that_changes_the_current_stage_announces_it(namespace, engine, topic):
    """docs/lifecycle.md: stage_changed 'for a recomputed history, only when the customer's current
    stage changed'. After the revert the customer is back in purchase; the last stage_changed
    subscribers got says lapsed."""
    user, events = await _replayed_there_and_back(namespace, engine, topic)
    assert (await profile_of(engine, user)).state.stage == "purchase"
    last_stage = [e["data"]["to_stage"] for e in events if e["type"] == "lifecycle.stage_changed"][-1]
    assert last_stage == "purchase", [(e["type"], e["data"].get("to_stage"), e["data"].get("superseded"))
                                      for e in events]


async def test_different_history_corrections_have_different_ids(namespace, engine, topic):
    """history_corrected's id is derived from sorted(superseded + kept): a correction that adds
    {at_risk, lapsed} and the one that later supersedes them have the same union, hence the same id,
    and consumers' inbox drops the second as a duplicate."""
    _, events = await _replayed_there_and_back(namespace, engine, topic)
    corrections = [e for e in events if e["type"] == "lifecycle.history_corrected"]
    assert len(corrections) == 2
    assert corrections[0]["data"] != corrections[1]["data"]
    assert corrections[0]["id"] != corrections[1]["id"], [
        (c["id"], c["data"]["superseded"], [a["to_stage"] for a in c["data"]["added"]]) for c in corrections]


# --- 4. A merge whose recomputed newest transition is an absorbed one ---------------------------------

async def test_a_merge_that_changes_the_survivors_stage_announces_it(namespace, engine, topic):
    """A visitor browses anonymously (awareness, then consideration), the known user has a page view
    (awareness). identify merges them: the survivor is now in consideration, its current stage changed -
    but the newest transition of the recomputed history is the absorbed profile's, already stored, so
    no stage_changed is emitted for the survivor's key."""
    h = _h()
    anon, user = f"a-{h}", f"u-{h}"
    await deliver(namespace, engine, [ev("page", T0, anonymousId=anon),
                                      ev("track", T0 + timedelta(hours=2), event="Product Viewed",
                                         anonymousId=anon)], now=T0 + timedelta(hours=2))
    await deliver(namespace, engine, [ev("page", T0 + timedelta(hours=1), userId=user)], now=T0 + timedelta(hours=3))
    await deliver(namespace, engine, [ev("identify", T0 + timedelta(hours=3), userId=user, anonymousId=anon)],
                  now=T0 + timedelta(hours=3))
    assert (await profile_of(engine, user)).state.stage == "consideration"
    events = await announced(engine, topic, [user])
    for_user = [(e["data"]["from_stage"], e["data"]["to_stage"]) for e in events
                if e["type"] == "lifecycle.stage_changed"]
    assert for_user[-1][1] == "consideration", (for_user, [e["type"] for e in events])


# --- 5. Merges keep the earliest acquisition ---------------------------------------------------------

async def test_a_merge_keeps_the_acquisition_of_the_earliest_campaign_touch(namespace, engine):
    """docs: acquisition is the channel and source of the earliest touchpoint (with UTM / referrer).
    Survivor: email campaign at t5. Absorbed: first seen at t1 without a campaign, ads at t9. The merge
    takes the absorbed profile's acquisition with its first_seen time (t1) - ads wins."""
    h = _h()
    anon, user = f"a-{h}", f"u-{h}"
    await deliver(namespace, engine, [ev("page", T0 + timedelta(hours=1), anonymousId=anon),
                                      ev("page", T0 + timedelta(hours=9), anonymousId=anon,
                                         context={"campaign": {"medium": "cpc", "source": "ads"}})], now=T0)
    await deliver(namespace, engine, [ev("page", T0 + timedelta(hours=5), userId=user,
                                         context={"campaign": {"medium": "email", "source": "newsletter"}})], now=T0)
    await deliver(namespace, engine, [ev("identify", T0 + timedelta(hours=10), userId=user, anonymousId=anon)],
                  now=T0 + timedelta(hours=10))
    profile = await profile_of(engine, user)
    assert (profile.acquisition, profile.acquired_at) == (
        {"channel": "email", "source": "newsletter"}, T0 + timedelta(hours=5))


# --- 6. Batches: a new profile on a key another profile leaves in the same batch ----------------------

async def test_a_batch_rekeying_a_profile_and_creating_one_on_its_old_key_applies(namespace, engine):
    """Anonymous profile keyed X identifies as Y; in the same batch a user whose userId is X appears.
    The new profile (customer_id X) is inserted before the re-key is saved: unique violation, the
    whole batch fails (the runner then retries record by record)."""
    h = _h()
    x, y = f"x-{h}", f"y-{h}"
    await deliver(namespace, engine, [ev("page", T0, anonymousId=x)], now=T0)
    await handle_directly(namespace, engine, [ev("identify", T0 + timedelta(minutes=1), userId=y, anonymousId=x),
                                              ev("page", T0 + timedelta(minutes=2), userId=x)],
                          now=T0 + timedelta(minutes=2))


async def test_a_batch_merging_a_profile_and_creating_one_on_its_old_key_applies(namespace, engine):
    h = _h()
    x, known = f"x-{h}", f"k-{h}"
    await deliver(namespace, engine, [ev("page", T0, anonymousId=x), ev("page", T0, userId=known)], now=T0)
    await handle_directly(namespace, engine, [ev("identify", T0 + timedelta(minutes=1), userId=known, anonymousId=x),
                                              ev("page", T0 + timedelta(minutes=2), userId=x)],
                          now=T0 + timedelta(minutes=2))


# --- 7. Rule sets the validator accepts but the engine cannot compute ---------------------------------

RHYTHM_OFF = {"at_risk_factor": 2, "lapsed_factor": 1000}  # 'lapse practically never': within bounds (le=1000)


async def _decade_buyer(namespace, engine) -> str:
    user = f"decade-{_h()}"
    await deliver(namespace, engine, [order(datetime(2013, 1, 1, tzinfo=UTC), "o1", userId=user),
                                      order(datetime(2023, 1, 1, tzinfo=UTC), "o2", userId=user)], now=T0)
    return user


async def test_an_accepted_rule_set_never_fails_a_customers_events(namespace, engine):
    """A customer whose orders are 10 years apart (an import): with lapsed_factor=1000 the lapse moment
    is year ~12000 - OverflowError on every event of theirs (dead-lettered after ingest said 2xx)."""
    user = await _decade_buyer(namespace, engine)
    rules = RuleSet(version=f"off-{_h()}", drift=RHYTHM_OFF)
    await handle_directly(namespace, engine, [ev("page", T0, userId=user)], now=T0, rules=rules)


async def test_one_failing_replay_job_does_not_block_the_next(namespace, engine, topic):
    """A dry run with such a rule set fails its page on every attempt; jobs are taken oldest first, so
    every later job (a normal dry run here) waits forever (promise 9: one bad record never blocks others)."""
    user = await _decade_buyer(namespace, engine)
    other = f"other-{_h()}"
    await deliver(namespace, engine, [order(T0, "o1", userId=other)], now=T0)
    async with engine.begin() as conn:
        await replays.create_job(conn, scope={"customer_id": user}, dry_run=True,
                                 rules=RuleSet(version=f"off-{_h()}", drift=RHYTHM_OFF))
        second = await replays.create_job(conn, scope={"customer_id": other}, dry_run=True, rules=DEFAULT_RULES)
    errors = []
    for _ in range(5):  # the worker is restarted after a crash: five rounds
        try:
            if not await replays.run_page(engine, topic=topic, now=T0 + timedelta(days=1)):
                break
        except Exception as error:  # noqa: BLE001
            errors.append(type(error).__name__)
    async with engine.connect() as conn:
        status = (await conn.execute(select(replay_jobs.c.status).where(replay_jobs.c.id == second))).scalar_one()
    # leave no runnable job behind for the other tests of this module
    async with engine.begin() as conn:
        await conn.execute(replay_jobs.update().where(replay_jobs.c.status.in_(("queued", "running")))
                           .values(status="failed"))
    assert status == "done", (status, errors)


async def test_one_customer_never_stops_the_sweeper_for_everyone(namespace, engine, topic):
    """Under rules a sweeper round computes the next drift moment of every due profile in one
    transaction: one customer whose next moment overflows fails the round, every round."""
    brisk = RuleSet(version=f"brisk-{_h()}", drift={"at_risk_factor": 0.001, "lapsed_factor": 0.002, "min_days": 0})
    odd, normal = f"odd-{_h()}", f"normal-{_h()}"
    await deliver(namespace, engine, [order(datetime(2012, 1, 1, tzinfo=UTC), "o1", userId=odd),
                                      order(datetime(2022, 1, 1, tzinfo=UTC), "o2", userId=odd),
                                      order(datetime(2022, 1, 1, tzinfo=UTC), "o1", userId=normal)],
                  now=datetime(2022, 1, 2, tzinfo=UTC), rules=brisk)
    rules = RuleSet(version=f"off-{_h()}", drift={"at_risk_factor": 0.001, "lapsed_factor": 1000, "min_days": 0})
    errors = []
    for _ in range(3):
        try:
            await sweep_once(engine, rules=rules, now=T0, topic=topic)
        except Exception as error:  # noqa: BLE001 - the worker is restarted after a crash
            errors.append(type(error).__name__)
    moves = [t["to_stage"] for t in await history(engine, normal)]
    assert moves == ["purchase", "at_risk", "lapsed"], (moves, errors)


# --- 8. Scope that matches nothing -------------------------------------------------------------------

async def test_a_dry_run_over_nobody_finishes_with_an_empty_report(namespace, engine, topic):
    async with engine.begin() as conn:
        job = await replays.create_job(conn, scope={"customer_id": f"nobody-{_h()}"}, rules=DEFAULT_RULES,
                                       dry_run=True)
    await run_jobs(engine, topic, T0)
    async with engine.connect() as conn:
        row = (await conn.execute(select(replay_jobs).where(replay_jobs.c.id == job))).one()
    assert (row.status, row.total, row.done, row.result["moves"]) == ("done", 0, 0, {})


# --- 10. Checks that hold (kept as regression guards) ------------------------------------------------

async def test_a_sweeper_holding_a_profile_a_batch_merges_away_neither_resurrects_nor_orphans(
        namespace, engine, topic, monkeypatch):
    """The sweeper has locked anonymous buyer A (SKIP LOCKED) and is about to write at_risk; meanwhile a
    batch merges A into known user K. The batch must wait for the sweeper; afterwards A stays merged, its
    transitions (the sweeper's included) belong to K, and nothing is stored under A's id."""
    import asyncio

    from lifecycle_stage_engine import sweeper as sweeper_module
    from lifecycle_stage_engine.db.models import profiles, transitions
    from sqlalchemy import func

    h = _h()
    anon, user = f"a-{h}", f"u-{h}"
    await deliver(namespace, engine, [order(T0, "o1", anonymousId=anon),
                                      ev("page", T0 - timedelta(minutes=1), userId=user)], now=T0)
    locked, release = asyncio.Event(), asyncio.Event()
    original = sweeper_module.repo.due_profiles

    async def paused(conn, *, now, limit):
        found = [p for p in await original(conn, now=now, limit=limit) if p.customer_id == anon]
        locked.set()
        await release.wait()
        return found

    monkeypatch.setattr(sweeper_module.repo, "due_profiles", paused)
    now = T0 + timedelta(days=100)
    sweep = asyncio.create_task(sweep_once(engine, rules=DEFAULT_RULES, now=now, topic=topic))
    await locked.wait()
    merge = asyncio.create_task(deliver(namespace, engine, [ev("identify", now, userId=user, anonymousId=anon)],
                                        now=now))
    await asyncio.sleep(1.0)
    assert not merge.done()  # waits for the sweeper's row lock
    release.set()
    await sweep
    await merge
    monkeypatch.undo()
    async with engine.connect() as conn:
        rows = {r.customer_id: r for r in (await conn.execute(select(profiles).where(
            profiles.c.id.in_(select(profiles.c.id).where(profiles.c.customer_id.in_([user]))) |
            profiles.c.merged_into.in_(select(profiles.c.id).where(profiles.c.customer_id == user))))).all()}
        survivor = rows[user]
        absorbed = next(r for k, r in rows.items() if k != user)
        under_absorbed = (await conn.execute(select(func.count()).select_from(transitions)
                                             .where(transitions.c.profile_id == absorbed.id))).scalar_one()
    assert absorbed.merged_into == survivor.id and absorbed.customer_id.startswith("merged:")
    assert absorbed.due_at is None and under_absorbed == 0
    assert [t["to_stage"] for t in await history(engine, user)] == ["awareness", "purchase", "at_risk"]
    assert survivor.stage == "at_risk"


async def test_touchpoints_at_and_before_an_applied_drift_moment_give_the_in_order_history(namespace, engine, topic):
    """A page view exactly at the at-risk moment and one a minute before it, delivered after the sweeper
    applied the move, end as in-order delivery does."""
    at_risk = T0 + timedelta(days=90)
    late = [lambda u, n: ev("page", at_risk, userId=u, mid=f"{n}-at"),
            lambda u, n: ev("page", at_risk - timedelta(minutes=1), userId=u, mid=f"{n}-before")]
    results = []
    for swept_first in (False, True):
        user = f"drift-{_h()}"
        await deliver(namespace, engine, [order(T0, "o1", userId=user, mid=f"{user}-o")], now=T0)
        if swept_first:
            await sweep_once(engine, rules=DEFAULT_RULES, now=at_risk + timedelta(days=1), topic=topic)
        for make in late:
            await deliver(namespace, engine, [make(user, user)], now=at_risk + timedelta(days=1))
        await sweep_once(engine, rules=DEFAULT_RULES, now=at_risk + timedelta(days=1), topic=topic)
        results.append([(t["from_stage"], t["to_stage"], t["reason"], t["event_time"])
                        for t in await history(engine, user)])
    assert results[0] == results[1]


async def test_a_replay_over_a_profile_stored_by_v2_rebuilds_it_without_re_announcing(namespace, engine, topic):
    """A profile in the v2 JSON shape (facts v2, v2 transition ids): a replay rebuilds it from the event
    log, supersedes the v2 rows, and announces no stage_changed (the stage is the same)."""
    from lifecycle_shared.events import derived_event_id
    from lifecycle_stage_engine.db.models import identities, profiles, touchpoints, transitions

    user, pid = f"v2-{_h()}", str(uuid.uuid4())
    page_id, order_id = f"{user}-page", f"{user}-order"
    t1 = T0 + timedelta(hours=1)
    async with engine.begin() as conn:
        await conn.execute(profiles.insert().values(
            id=pid, customer_id=user, user_id=user, stage="purchase", stage_since=t1, traits={},
            facts={"v": 2, "touchpoints": 2, "intent": False, "advocacy": False, "orders": [["o1", "10"]],
                   "refunded_order_ids": [], "last_event_time": t1.isoformat()},
            first_seen_at=T0, last_seen_at=t1, due_at=None))
        await conn.execute(identities.insert().values(id_type="user", id_value=user, profile_id=pid))
        await conn.execute(touchpoints.insert(), [
            {"event_id": page_id, "profile_id": pid, "name": "page_viewed", "event_time": T0, "properties": {}},
            {"event_id": order_id, "profile_id": pid, "name": "order_completed", "event_time": t1,
             "properties": {"order_id": "o1", "revenue": 10}}])
        await conn.execute(transitions.insert(), [
            {"id": derived_event_id(page_id, "stage-engine", "awareness"), "profile_id": pid, "customer_id": user,
             "from_stage": None, "to_stage": "awareness", "reason": "first_touchpoint", "rule_version": "default-v1",
             "cause_event_ids": [page_id], "event_time": T0},
            {"id": derived_event_id(order_id, "stage-engine", "purchase"), "profile_id": pid, "customer_id": user,
             "from_stage": "awareness", "to_stage": "purchase", "reason": "first_order",
             "rule_version": "default-v1", "cause_event_ids": [order_id], "event_time": t1}])
    assert (await profile_of(engine, user)).outdated
    async with engine.begin() as conn:
        await replays.create_job(conn, scope={"customer_id": user}, rules=DEFAULT_RULES, dry_run=False)
    await run_jobs(engine, topic, T0 + timedelta(days=1))
    profile = await profile_of(engine, user)
    assert not profile.outdated and profile.state.stage == "purchase" and len(profile.state.facts.orders) == 1
    assert [(t["from_stage"], t["to_stage"]) for t in await history(engine, user)] == [
        (None, "awareness"), ("awareness", "purchase")]
    events = await announced(engine, topic, [user])
    assert [e["type"] for e in events] == ["lifecycle.history_corrected"]



async def test_the_runner_still_applies_that_batch_record_by_record(namespace, engine):
    """Severity of the two batch failures above: the runner's one-by-one fallback does apply them."""
    h = _h()
    x, y = f"x-{h}", f"y-{h}"
    await deliver(namespace, engine, [ev("page", T0, anonymousId=x)], now=T0)
    await deliver(namespace, engine, [ev("identify", T0 + timedelta(minutes=1), userId=y, anonymousId=x),
                                      ev("page", T0 + timedelta(minutes=2), userId=x)], now=T0 + timedelta(minutes=2))
    assert (await profile_of(engine, y)).customer_id == y and (await profile_of(engine, x)).customer_id == x
