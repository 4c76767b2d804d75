"""The stage engine's analytics on a shop with 100k customers and 1M touchpoint events.

Fills a fresh stage-engine database with a generated shop (`analytics_shop.py`). Then measures:

1. the analytics reads of `db/analytics.py`, in-process (the service's engine, median and max
   of R runs after a first one), next to raw baselines over the same tables measured the same way (a
   count and a sequential-scan aggregate over touchpoints, the bare JSON unnest of the orders, a scan
   of the transitions), with ratios; EXPLAIN (ANALYZE, BUFFERS) of any read slower than --slow-ms, with
   the plan nodes that take the most time of their own; where customer_orders spends its time (the
   driver's fetch, SQLAlchemy's, the rows made into CustomerOrders);
2. the worker's refresh end to end (load, score in the process pool, write every score row), and the
   scoring, the model fits and the CLV range alone on the loaded orders;
3. the stage engine as the services run it (its own process, the analytics tables emptied first): how
   long its own first scheduled refresh takes, then each analytics endpoint closed-loop over the raw
   keep-alive client (p50/p99), next to `/healthz` (the HTTP floor) and the in-process time of the same
   read, and the dashboard's six calls at once;
4. the dashboard's first paint and data-ready in headless Chromium (cold and warm cache), when the
   page exists.

Each phase records how busy the machine was and how much of that was this run (`cpu_by_phase`): on
a shared machine, other processes' CPU shows up there rather than silently in the figures.

    .venv/bin/python bench/analytics.py [--customers 100000] [--events 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analytics_service import dashboard_paint, first_refresh, over_http, reset_analytics
from analytics_shop import database_facts, fill
from cpu import CpuWatch
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import ServiceProcess
from lifecycle_shared.db import create_engine
from lifecycle_stage_engine.analytics import scoring
from lifecycle_stage_engine.db import analytics as queries
from lifecycle_stage_engine.db.analytics import Filters
from lifecycle_stage_engine.workers import analytics as worker
from profile_api import fresh_stage_engine_database
from report import code_version, host
from sqlalchemy import text

DASHBOARD = Path(scoring.__file__).parent / "dashboard" / "index.html"

class Recording:
    """A connection that remembers the statements run through it (for EXPLAIN)."""

    def __init__(self, conn) -> None:
        self.conn, self.statements = conn, []

    async def execute(self, statement, parameters=None):
        self.statements.append((statement, parameters))
        return await self.conn.execute(statement, parameters)


def reads(now: datetime) -> dict[str, tuple[Any, str]]:
    """Name -> (call on a connection, the raw baseline it is compared with)."""
    everyone = Filters()

    def days(n: int) -> dict[str, datetime]:
        return {"start": now - timedelta(days=n), "end": now}

    return {
        "cohorts": (lambda c: queries.cohorts(c, everyone), "unnest_orders"),
        "cohorts_by_source": (lambda c: queries.cohorts(c, everyone, by="source"), "unnest_orders"),
        "cohorts_source_google": (lambda c: queries.cohorts(c, Filters(source="google")), "unnest_orders"),
        "funnel_90d": (lambda c: queries.funnel(c, everyone, **days(90)), "transitions_by_stage"),
        "funnel_2y": (lambda c: queries.funnel(c, everyone, **days(730)), "transitions_by_stage"),
        "stage_mix_2y_month": (lambda c: queries.stage_mix(c, everyone, **days(730), period="month"),
                               "transitions_by_stage"),
        "stage_mix_2y_week": (lambda c: queries.stage_mix(c, everyone, **days(730), period="week"),
                              "transitions_by_stage"),
        "stage_counts": (lambda c: queries.stage_counts(c, everyone), "profiles_by_stage_seqscan"),
        "recent_transitions_50": (lambda c: queries.recent_transitions(c, everyone, limit=50), "transitions_by_stage"),
        "customer_orders": (lambda c: queries.customer_orders(c), "unnest_orders"),
    }


BASELINES = {
    "count_touchpoints": "SELECT count(*) FROM touchpoints",
    "touchpoints_by_name": "SELECT name, count(*) FROM touchpoints GROUP BY name",
    "unnest_orders": "SELECT count(*) FROM profiles p, jsonb_array_elements(p.facts->'orders') AS o",
    "transitions_by_stage": "SELECT to_stage, count(*) FROM transitions GROUP BY to_stage",
    "profiles_by_stage_seqscan": "SELECT stage, count(*) FROM profiles GROUP BY stage",
}
MAIN_BASELINE = "touchpoints_by_name"


def _size(result: Any) -> int | None:
    return len(result) if hasattr(result, "__len__") else None


async def timed_runs(engine, call, runs: int) -> dict[str, Any]:
    """A first run (warms the connection's prepared statements and the caches), then `runs` runs."""
    times, size = [], None
    for _ in range(runs + 1):
        async with engine.connect() as conn:
            started = time.perf_counter()
            result = await call(conn)
            times.append((time.perf_counter() - started) * 1000)
            size = _size(result)
    return {"median_ms": round(statistics.median(times[1:]), 1), "max_ms": round(max(times[1:]), 1),
            "first_ms": round(times[0], 1), "runs": runs, "result_rows": size}


async def _raw(conn, sql: str):
    return (await conn.execute(text(sql))).all()


def _self_times(plan: dict) -> list[tuple[float, dict]]:
    """Each node of a JSON plan with its own time: its total (times loops), less its children's. A CTE's
    plan runs inside the CTE Scans that read it: a CTE Scan's own time leaves the CTE's out, and the CTE
    plan is not subtracted from the node it hangs under."""
    found: list[tuple[float, dict]] = []
    ctes: dict[str, float] = {}

    def total_of(node: dict) -> float:
        return node.get("Actual Total Time", 0.0) * node.get("Actual Loops", 1)

    def is_cte(node: dict) -> bool:
        return node.get("Subplan Name", "").startswith("CTE ")

    def collect(node: dict) -> None:
        if is_cte(node):
            ctes[node["Subplan Name"][4:]] = total_of(node)
        for child in node.get("Plans", []):
            collect(child)

    def walk(node: dict) -> float:
        children = sum(walk(child) for child in node.get("Plans", []) if not is_cte(child))
        for child in node.get("Plans", []):
            if is_cte(child):
                walk(child)
        own = total_of(node) - children
        if node["Node Type"] == "CTE Scan":
            own = max(0.0, own - ctes.get(node.get("CTE Name", ""), 0.0))
        found.append((own, node))
        return total_of(node)

    collect(plan)
    walk(plan)
    return found


async def explain(engine, call, *, top: int = 6) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement `call` runs: the text plan, and the nodes that take the
    most time of their own."""
    async with engine.connect() as conn:
        recording = Recording(conn)
        await call(recording)
        out = []
        for statement, parameters in recording.statements:
            sql = statement.text
            plan_text = [row[0] for row in await conn.execute(
                text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"), parameters)]
            plan_json = (await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"),
                                            parameters)).scalar()[0]
            nodes = sorted(_self_times(plan_json["Plan"]), key=lambda item: -item[0])[:top]
            out.append({
                "execution_ms": round(plan_json["Execution Time"], 1),
                "planning_ms": round(plan_json["Planning Time"], 1),
                "top_nodes_by_own_time": [
                    {"own_ms": round(own, 1), "node": node["Node Type"],
                     **{key: node[key] for key in ("Relation Name", "Index Name", "CTE Name", "Strategy", "Sort Method",
                                                   "Sort Space Used", "Sort Space Type", "Actual Rows", "Actual Loops",
                                                   "Peak Memory Usage", "Disk Usage", "Hash Batches")
                        if key in node}}
                    for own, node in nodes],
                "plan": plan_text, "sql": " ".join(sql.split())})
        return out


class TimedPool(Executor):
    """The worker's process pool, timing each job from submit to result (pickling both ways included)."""

    def __init__(self, pool: Executor) -> None:
        self.pool, self.seconds = pool, []

    def submit(self, fn, /, *args, **kwargs):
        started = time.perf_counter()
        future = self.pool.submit(fn, *args, **kwargs)
        future.add_done_callback(lambda _: self.seconds.append(time.perf_counter() - started))
        return future

    def shutdown(self, wait: bool = True, **kwargs) -> None:
        self.pool.shutdown(wait, **kwargs)


async def refresh_runs(engine, runs: int) -> list[dict[str, Any]]:
    """`worker.refresh` as the service runs it, with its parts: the load (queries.customer_orders), the
    scoring in the process pool (the first run spawns the process and imports numpy/scipy there), and
    the rest (the previous segments read, DELETE + INSERT of every score row, snapshot, fit row, commit)."""
    loads: list[float] = []
    original = queries.customer_orders

    async def timed_load(conn):
        started = time.perf_counter()
        try:
            return await original(conn)
        finally:
            loads.append(time.perf_counter() - started)

    out = []
    queries.customer_orders = timed_load  # worker.refresh calls it through the module
    try:
        with worker.executor() as process_pool:
            pool = TimedPool(process_pool)
            for run in range(runs):
                before = await _count(engine, "SELECT count(*) FROM customer_scores")
                started = time.perf_counter()
                result = await worker.refresh(engine, pool, now=datetime.now(UTC), options=scoring.Options())
                total = time.perf_counter() - started
                load, score = loads[-1], pool.seconds[-1]
                out.append({"run": run + 1, "score_rows_before": before, "total_s": round(total, 2),
                            "load_s": round(load, 2), "score_in_process_pool_s": round(score, 2),
                            "write_and_rest_s": round(total - load - score, 2),
                            "scored_customers": result and result["scored_customers"],
                            "fit_problems": result and result["problems"],
                            "bgnbd_params": result and result["bgnbd"] and result["bgnbd"]["params"],
                            "gamma_gamma_params": result and result["gamma_gamma"] and result["gamma_gamma"]["params"]})
    finally:
        queries.customer_orders = original
    return out


async def _count(engine, sql: str) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar()


async def orders_split(engine, runs: int) -> dict[str, Any]:
    """Where queries.customer_orders spends its time: the statement fetched by the driver alone (asyncpg),
    through SQLAlchemy (`execute().all()`), and the whole function (rows -> CustomerOrders)."""
    async def driver(conn):
        return await (await conn.get_raw_connection()).driver_connection.fetch(queries.ORDERS.text)

    async def alchemy(conn):
        return (await conn.execute(queries.ORDERS)).all()

    return {"fetch_asyncpg": await timed_runs(engine, driver, runs),
            "fetch_sqlalchemy": await timed_runs(engine, alchemy, runs),
            "customer_orders": await timed_runs(engine, queries.customer_orders, runs)}


def pure_runs(customers: list[scoring.CustomerOrders], runs: int) -> dict[str, Any]:
    """scoring.score and scoring.fit alone, in this process, on the loaded orders; and the 10-90% CLV range
    (DRAWS parameter draws, each a full CLV over every customer) alone."""
    now = datetime.now(UTC)
    transactions = [(c.profile_id, t, a) for c in customers for t, a, _ in c.orders]
    out: dict[str, Any] = {"customers": len(customers), "orders": len(transactions), "range_draws": scoring.DRAWS}
    fits = scoring.fit(transactions, calibration_end=now, unit="D", fitted_at=now)
    for name, call in (("score_s", lambda: scoring.score(customers, as_of=now)),
                       ("fit_s", lambda: scoring.fit(transactions, calibration_end=now, unit="D", fitted_at=now)),
                       ("fit_weeks_s", lambda: scoring.fit(transactions, calibration_end=now, unit="W",
                                                           fitted_at=now)),
                       ("clv_range_s", lambda: scoring._range(fits, scoring.Options(), 0))):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        out[name] = {"median": round(statistics.median(times), 2), "max": round(max(times), 2), "runs": runs}
    return out


async def timed_reads(engine, *, runs: int, slow_ms: float) -> dict[str, Any]:
    now = datetime.now(UTC)
    baselines = {name: await timed_runs(engine, lambda c, sql=sql: _raw(c, sql), runs)
                 for name, sql in BASELINES.items()}
    main = baselines[MAIN_BASELINE]["median_ms"]
    figures = {}
    for name, (call, baseline) in reads(now).items():
        figure = await timed_runs(engine, call, runs)
        figure["ratio_to_touchpoints_by_name"] = round(figure["median_ms"] / main, 2)
        figure["closest_baseline"] = baseline
        figure["ratio_to_closest_baseline"] = round(figure["median_ms"] / baselines[baseline]["median_ms"], 2)
        figures[name] = figure
    slow = {name: await explain(engine, reads(now)[name][0]) for name, figure in figures.items()
            if figure["median_ms"] >= slow_ms}
    return {"baselines": baselines, "reads": figures, "explain_slow_reads": slow,
            "customer_orders_split": await orders_split(engine, runs)}


async def scoring_and_refresh(engine, *, heavy_runs: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        loaded = await queries.customer_orders(conn)
    pure = await asyncio.to_thread(pure_runs, loaded, heavy_runs)
    refreshes = await refresh_runs(engine, heavy_runs)
    async with engine.connect() as conn:
        segments = {row.segment: row.n for row in await conn.execute(text(
            "SELECT segment, count(*) AS n FROM customer_scores GROUP BY 1 ORDER BY 2 DESC"))}
    return {"scoring_alone": pure, "refresh": refreshes, "customer_scores_rows": sum(segments.values()),
            "segments": segments}


async def in_process(database_url: str, *, runs: int, heavy_runs: int, slow_ms: float,
                     watch: CpuWatch) -> dict[str, Any]:
    engine = create_engine(database_url)
    try:
        with watch.phase("in_process_reads"):
            out = await timed_reads(engine, runs=runs, slow_ms=slow_ms)
        with watch.phase("in_process_scoring_and_refresh"):
            out |= await scoring_and_refresh(engine, heavy_runs=heavy_runs)
    finally:
        await engine.dispose()
    return out


# --- the run ---------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each read (after one first run)")
    parser.add_argument("--heavy-runs", type=int, default=2, help="runs of the refresh, the scoring and the fits")
    parser.add_argument("--slow-ms", type=float, default=500, help="EXPLAIN ANALYZE the reads slower than this")
    parser.add_argument("--concurrency", type=int, default=1, help="HTTP connections (the dashboard: one user)")
    parser.add_argument("--seconds", type=float, default=10, help="closed loop per endpoint")
    parser.add_argument("--refresh-timeout", type=float, default=900)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "analytics.json")
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": host(), "code": code_version(),
                              "parameters": {k: v for k, v in vars(args).items() if k != "out"}}
    watch = CpuWatch()
    infra = Infra.start()
    process = None
    try:
        config, service, dsn = fresh_stage_engine_database(infra)
        database_url = config.database_url(service)
        report["machine"] |= asyncio.run(database_facts(dsn))
        end = datetime.now(UTC).replace(microsecond=0)
        with watch.phase("fill"):
            report |= asyncio.run(fill(dsn, customers=args.customers, events=args.events, end=end))
        print(f"filled in {report['fill_seconds']} s", file=sys.stderr)
        report["in_process"] = asyncio.run(in_process(database_url, runs=args.runs, heavy_runs=args.heavy_runs,
                                                      slow_ms=args.slow_ms, watch=watch))
        print("in-process reads done", file=sys.stderr)
        asyncio.run(reset_analytics(dsn))
        process = ServiceProcess(service, config, Path(tempfile.mkdtemp()) / "stage-engine.log")
        with watch.phase("service_start_and_first_refresh"):
            started = time.perf_counter()
            process.start()
            process.wait_ready(timeout_s=120)
            ready_s = time.perf_counter() - started
            refreshed = asyncio.run(first_refresh(process.url, started, timeout_s=args.refresh_timeout))
        report["service_first_scheduled_refresh"] = {"ready_after_s": round(ready_s, 1), **refreshed}
        print("service refreshed", file=sys.stderr)
        with watch.phase("http"):
            report["http"] = asyncio.run(over_http(process.url, dsn, report["in_process"]["reads"],
                                                   concurrency=args.concurrency, seconds=args.seconds))
        if DASHBOARD.is_file():
            try:
                with watch.phase("dashboard"):
                    report["dashboard"] = asyncio.run(dashboard_paint(process.url))
            except Exception as error:  # the page is being built alongside: keep the rest of the report
                report["dashboard"] = {"error": repr(error)[:2000]}
        else:
            report["dashboard"] = {"skipped": f"{DASHBOARD} does not exist"}
        report["service_log_errors"] = [line[:500] for line in process.log_path.read_text(errors="replace").splitlines()
                                        if '"level": "ERROR"' in line or "Traceback" in line][:5]
    finally:
        if process:
            process.stop()
        infra.stop()
    report["cpu_by_phase"] = watch.phases | {
        "note": "other_processes_cores: CPU of processes outside this run (or gone before the phase ended: "
                "Chromium in the dashboard phase); near 0 means the figures had the machine to themselves"}
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
