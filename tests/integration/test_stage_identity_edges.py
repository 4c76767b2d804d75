"""The stage engine's identity edges (real PostgreSQL, the real runner and handlers; no Kafka): a merge
that changes the survivor's stage announces it, merges keep the earliest acquisition, identity changes in
one batch never collide on a customer key, a sweeper holding a profile a batch merges away neither
resurrects nor orphans it."""

from __future__ import annotations

from datetime import timedelta

from lifecycle_stage_engine.domain.rules import DEFAULT_RULES
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
)

# --- A merge whose recomputed newest transition is an absorbed one ---------------------------------

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


# --- Merges keep the earliest acquisition ---------------------------------------------------------

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


# --- Batches: a new profile on a key another profile leaves in the same batch ----------------------

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


# --- Checks that hold (kept as regression guards) ------------------------------------------------

async def test_a_sweeper_holding_a_profile_a_batch_merges_away_neither_resurrects_nor_orphans(
        namespace, engine, topic, monkeypatch):
    """The sweeper has locked anonymous buyer A (SKIP LOCKED) and is about to write at_risk; meanwhile a
    batch merges A into known user K. The batch must wait for the sweeper; afterwards A stays merged, its
    transitions (the sweeper's included) belong to K, and nothing is stored under A's id."""
    import asyncio

    from lifecycle_stage_engine.db.models import profiles, transitions
    from lifecycle_stage_engine.workers import sweeper as sweeper_module
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


async def test_a_rekey_and_a_new_profile_on_the_old_key_through_the_runner(namespace, engine):
    """Through the runner: a re-key, then a new profile on the old key; each key ends on its own profile."""
    h = _h()
    x, y = f"x-{h}", f"y-{h}"
    await deliver(namespace, engine, [ev("page", T0, anonymousId=x)], now=T0)
    await deliver(namespace, engine, [ev("identify", T0 + timedelta(minutes=1), userId=y, anonymousId=x),
                                      ev("page", T0 + timedelta(minutes=2), userId=x)], now=T0 + timedelta(minutes=2))
    assert (await profile_of(engine, y)).customer_id == y and (await profile_of(engine, x)).customer_id == x
