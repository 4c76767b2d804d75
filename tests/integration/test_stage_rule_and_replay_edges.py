"""The stage engine's rule and replay edges (real PostgreSQL, the real runner, sweeper and replay jobs; no
Kafka): a rule set put in force moves pending moments, recomputed histories announce a new current stage
and corrections have ids of their own, one customer's failure never stops a sweep or blocks later replay
jobs, touchpoints around an applied drift moment give the in-order history, a replay rebuilds profiles
stored by the previous version without re-announcing them. Each test states what docs/lifecycle.md promises."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from lifecycle_stage_engine import rulebook
from lifecycle_stage_engine.db.models import replay_jobs
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES, RuleSet
from lifecycle_stage_engine.workers import replays
from lifecycle_stage_engine.workers.sweeper import sweep_once
from sqlalchemy import select

from tests.support.stage_engine import (
    T0,
    _h,
    announced,
    deliver,
    ev,
    handle_directly,
    history,
    order,
    profile_of,
    run_jobs,
)

# --- Rules change: drift moments stored under the old rules ----------------------------------------

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


# --- Replays A -> B -> A: a silent stage change and a colliding history_corrected id ---------------

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


# --- Rule sets the validator accepts but the engine cannot compute ---------------------------------

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


# --- Scope that matches nothing -------------------------------------------------------------------

async def test_a_dry_run_over_nobody_finishes_with_an_empty_report(namespace, engine, topic):
    async with engine.begin() as conn:
        job = await replays.create_job(conn, scope={"customer_id": f"nobody-{_h()}"}, rules=DEFAULT_RULES,
                                       dry_run=True)
    await run_jobs(engine, topic, T0)
    async with engine.connect() as conn:
        row = (await conn.execute(select(replay_jobs).where(replay_jobs.c.id == job))).one()
    assert (row.status, row.total, row.done, row.result["moves"]) == ("done", 0, 0, {})


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
