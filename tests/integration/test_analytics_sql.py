"""The analytics reads in PostgreSQL equal the reference computations on the same stored data.

A generated shop (customers from three sources, orders over fourteen months, refunds, reviews) goes
through the real handler; then the SQL cohort matrix is compared with pandas, the SQL funnel and stage
mix with the pure functions over the stored history, and a refresh's stored scores with `rfm.scores` and
the models fitted on the same orders.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from lifecycle_stage_engine.analytics import funnel as funnel_model
from lifecycle_stage_engine.analytics import rfm, scoring
from lifecycle_stage_engine.db import analytics as queries
from lifecycle_stage_engine.workers import analytics as worker
from sqlalchemy import text

from tests.support.generated_shop import NOW, START, shop
from tests.support.shops import bgnbd_shop, order_events
from tests.support.stage_engine import deliver, ev


@pytest.fixture(scope="module")
async def filled(namespace, engine):
    # The generated shop, and buyers simulated from the models' assumptions: the fit is well determined.
    events = shop() + order_events(bgnbd_shop(200, as_of=NOW, seed=11), ev)
    for start in range(0, len(events), 50):
        await deliver(namespace, engine, events[start:start + 50], now=NOW)
    return engine


async def stored_orders(engine) -> pd.DataFrame:
    async with engine.connect() as conn:
        customers = await queries.customer_orders(conn)
        sources = {row.id: row.source for row in await conn.execute(text(
            "SELECT id::text, acquisition->>'source' AS source FROM profiles WHERE merged_into IS NULL"))}
    return pd.DataFrame([(c.profile_id, time, float(amount), sources.get(c.profile_id))
                         for c in customers for time, amount, _ in c.orders],
                        columns=["customer", "time", "amount", "source"])


def pandas_cohorts(orders: pd.DataFrame, *, by: str | None = None) -> dict:
    orders = orders.assign(month=orders["time"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("M"))
    first = orders.groupby("customer")["month"].min().rename("cohort")
    orders = orders.join(first, on="customer")
    orders["offset"] = (orders["month"] - orders["cohort"]).apply(lambda d: d.n)
    orders["group"] = orders["source"].fillna("(none)") if by else None
    expected = {}
    for (cohort, group), members in orders.groupby(["cohort", "group"], dropna=False):
        size = members["customer"].nunique()
        later = members[members["offset"] >= 1].groupby("offset")["customer"].nunique()
        expected[(str(cohort), None if by is None else group)] = (size, {int(k): int(v) for k, v in later.items()})
    return expected


async def test_the_cohort_matrix_in_sql_equals_pandas_on_the_stored_orders(filled):
    orders = await stored_orders(filled)
    assert orders["customer"].nunique() > 40
    async with filled.connect() as conn:
        plain = await queries.cohorts(conn, queries.Filters())
        by_source = await queries.cohorts(conn, queries.Filters(), by="source")
        one_source = await queries.cohorts(conn, queries.Filters(source="google"))
        windowed = await queries.cohorts(conn, queries.Filters(start=datetime(2025, 6, 1, tzinfo=UTC),
                                                               end=datetime(2025, 10, 1, tzinfo=UTC)))
    as_dict = lambda found: {(c.month, c.group): (c.size, c.buyers_by_offset) for c in found}  # noqa: E731
    assert as_dict(plain) == pandas_cohorts(orders)
    assert as_dict(by_source) == pandas_cohorts(orders, by="source")
    assert as_dict(one_source) == pandas_cohorts(orders[orders["source"] == "google"])
    assert as_dict(windowed) == {k: v for k, v in pandas_cohorts(orders).items() if "2025-06" <= k[0] < "2025-10"}
    assert any(c.buyers_by_offset for c in plain), "some cohort buys again"


async def live_steps(engine, source: str | None = None) -> list[funnel_model.Step]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT t.profile_id::text, t.to_stage, t.event_time "
            "FROM transitions t JOIN profiles p ON p.id = t.profile_id "
            "WHERE t.superseded_at IS NULL AND p.merged_into IS NULL "
            "AND (CAST(:source AS text) IS NULL OR p.acquisition->>'source' = :source) ORDER BY t.seq"),
            {"source": source})
        return [funnel_model.Step(customer_id=r.profile_id, to_stage=r.to_stage, time=r.event_time) for r in rows]


def rounded(figures: list[funnel_model.StageFigures]) -> list[funnel_model.StageFigures]:
    return [replace(f, median_days_in_stage=None if f.median_days_in_stage is None
                    else round(f.median_days_in_stage, 4)) for f in figures]


@pytest.mark.parametrize("days", [30, 120, 500])
async def test_the_funnel_in_sql_equals_the_reference_over_the_stored_history(filled, days):
    start, end = NOW - timedelta(days=days), NOW - timedelta(days=days // 3)
    async with filled.connect() as conn:
        found = await queries.funnel(conn, queries.Filters(), start=start, end=end)
        google = await queries.funnel(conn, queries.Filters(source="google"), start=start, end=end)
    assert found == rounded(funnel_model.funnel(await live_steps(filled), start=start, end=end))
    assert google == rounded(funnel_model.funnel(await live_steps(filled, "google"), start=start, end=end))
    if days == 500:
        assert found[0].entered > 40 and any(f.converted for f in found)


async def test_the_stage_mix_counts_each_customers_stage_at_each_month_end(filled):
    async with filled.connect() as conn:
        series = await queries.stage_mix(conn, queries.Filters(), start=START, end=NOW + timedelta(days=1))
        current = await queries.stage_counts(conn, queries.Filters())
    steps = await live_steps(filled)
    for point in series:
        month_start = datetime.fromisoformat(point["period"]).replace(tzinfo=UTC)
        month_end = (month_start + timedelta(days=32)).replace(day=1)
        at_end: dict[str, str] = {}
        for step in sorted(steps, key=lambda s: s.time):
            if step.time < month_end:
                at_end[step.customer_id] = step.to_stage
        expected = pd.Series(list(at_end.values())).value_counts().to_dict() if at_end else {}
        assert point["customers"] == expected, point["period"]
    assert series[-1]["customers"] == current
    assert len(series) >= 12


async def test_a_refresh_stores_every_buyers_scores_and_the_movement_between_refreshes(filled, namespace):
    filled_namespace = namespace
    pool = worker.executor()
    try:
        first = await worker.refresh(filled, pool, now=NOW, options=scoring.Options())
        async with filled.connect() as conn:
            customers = await queries.customer_orders(conn)
            stored = {row.profile_id: row.document for row in await conn.execute(
                text("SELECT profile_id::text, document FROM customer_scores"))}
        buyers = [c for c in customers if c.orders]
        assert set(stored) == {c.profile_id for c in buyers}
        expected = rfm.scores([rfm.Buyer(c.profile_id, max(t for t, _, _ in c.orders), len(c.orders),
                                         sum((a for _, a, _ in c.orders), Decimal(0))) for c in buyers], as_of=NOW)
        assert {pid: (d["r"], d["f"], d["m"], d["segment"]) for pid, d in stored.items()} == {
            pid: (s.r, s.f, s.m, s.segment) for pid, s in expected.items()}
        for c in buyers:  # historic CLV net of refunds; margin over the orders with a cost
            document = stored[c.profile_id]
            assert document["historic_clv"] == round(float(sum(a for _, a, _ in c.orders)), 2)
            costs = [(a, cost) for _, a, cost in c.orders if cost is not None]
            assert document["margin"] == (round(float(sum(a - cost for a, cost in costs)), 2) if costs else None)
        assert first["repeat_buyers"] > 5 and first["bgnbd"]["n"] == len(buyers)
        assert all(d["p_alive"] is not None and d["churn_band"] in ("low", "medium", "high") for d in stored.values())
        # Orders arrive: the customers who had not bought for longest buy again, and move up.
        sleepers = sorted(buyers, key=lambda c: -stored[c.profile_id]["recency_days"])[:10]
        await deliver(filled_namespace, filled, [
            ev("track", NOW + timedelta(days=1), event="Order Completed", userId=c.customer_id,
               properties={"order_id": f"{c.customer_id}-back", "revenue": 500}) for c in sleepers],
            now=NOW + timedelta(days=1))
        await worker.refresh(filled, pool, now=NOW + timedelta(days=2), options=scoring.Options())
    finally:
        pool.shutdown()
    async with filled.connect() as conn:
        snapshots = (await conn.execute(text("SELECT sizes, movement FROM rfm_snapshots ORDER BY scored_at"))).all()
    assert len(snapshots) == 2
    assert sum(snapshots[0].sizes.values()) == len(buyers) and sum(n for *_, n in snapshots[0].movement) == len(buyers)
    assert snapshots[1].movement, "moves are recorded between the two refreshes"
    moved_up = {b for a, b, _ in snapshots[1].movement}
    assert moved_up & {"Champions", "Loyal", "Potential loyalist", "New", "Promising"}
    async with filled.connect() as conn:
        now_scored = {row.profile_id: row.document for row in await conn.execute(
            text("SELECT profile_id::text, document FROM customer_scores"))}
    assert all(now_scored[c.profile_id]["r"] == 5 for c in sleepers)


async def test_a_fit_whose_process_is_killed_is_reported_failed_not_left_running(filled):
    pool = worker.executor()
    try:
        pool.submit(int).result()  # the worker process is up
        async with filled.begin() as conn:
            fit_id = await worker.request_fit(conn, calibration_end=NOW, unit="W")
        for pid in list(pool._processes):  # kill -9, as the OOM killer would
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):  # the worker loop replaces its pool on this
            await worker.run_once(filled, pool, now=NOW, options=scoring.Options(), every_s=3600)
    finally:
        pool.shutdown(wait=False)
    async with filled.connect() as conn:
        row = (await conn.execute(text("SELECT status, result FROM clv_fits WHERE id = :id"), {"id": fit_id})).one()
    assert row.status == "failed" and row.result["error"]
    fresh = worker.executor()
    try:  # a new pool serves the same request asked again
        async with filled.begin() as conn:
            again = await worker.request_fit(conn, calibration_end=NOW, unit="W")
        assert await worker.run_once(filled, fresh, now=NOW, options=scoring.Options(), every_s=3600)
    finally:
        fresh.shutdown()
    async with filled.connect() as conn:
        status = (await conn.execute(text("SELECT status FROM clv_fits WHERE id = :id"), {"id": again})).scalar()
    assert status == "done"
