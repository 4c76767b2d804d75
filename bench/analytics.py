"""The stage engine's analytics on a shop with 100k customers and 1M touchpoint events.

Fills a fresh stage-engine database by SQL (set-based, generate_series) with a shop: customers
acquired over two years from six sources, 60% of them buyers (most with one or two orders, a tail of
frequent buyers; varied amounts, costs on most orders), a touchpoints table of N events (the order
events among them, matching the profiles' stored orders), and each customer's stage history (a chain:
each move starts where the one before ended, the last one is the profile's stage). Then measures:

1. the analytics reads of `analytics/queries.py`, in-process (the service's engine, median and max
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
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import Executor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any

import asyncpg
import psutil
from http_load import percentiles
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import ServiceProcess
from lifecycle_shared.db import create_engine
from lifecycle_stage_engine.analytics import queries, scoring, worker
from lifecycle_stage_engine.analytics.queries import Filters
from profile_api import TOKEN, closed_loop, fresh_stage_engine_database
from rawhttp import Pool
from report import code_version
from sqlalchemy import text

# (source, channel) of the customers' first touch, and the share of customers from each.
SOURCES = [("google", "cpc", 0.28), ("facebook", "paid_social", 0.18), ("instagram", "social", 0.17),
           ("newsletter", "email", 0.12), ("partner-blog", "referral", 0.13), ("duckduckgo", "organic", 0.12)]
BUYER_SHARE = 0.6
DASHBOARD = Path(queries.__file__).parent / "dashboard" / "index.html"


def _source_sql() -> tuple[str, str, str]:
    """The CASE that picks a source index from a uniform `u_src`, and the source and channel arrays."""
    cases, cumulative = [], 0.0
    for index, (_, _, share) in enumerate(SOURCES[:-1], start=1):
        cumulative += share
        cases.append(f"WHEN u_src < {cumulative:.4f} THEN {index}")
    case = f"CASE {' '.join(cases)} ELSE {len(SOURCES)} END"
    names = "ARRAY[" + ", ".join(f"'{s}'" for s, _, _ in SOURCES) + "]"
    channels = "ARRAY[" + ", ".join(f"'{c}'" for _, c, _ in SOURCES) + "]"
    return case, names, channels


# RFC 3339 as Python's isoformat writes a UTC time (what state_to_json stores and state_from_json reads).
RFC = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')"

# Statements separated by ";\n", run in order on one connection (temporary tables live in its session).
# ${customers}, ${events}, ${end} (a timestamptz literal), ${buyer_share}, ${source_case}, ${source_names},
# ${source_channels} are substituted; `random()` after setseed: the same shop every run.
FILL = Template("""
SELECT setseed(0.42);
CREATE TEMP TABLE bench_customers AS
WITH drawn AS (
    SELECT i, random() AS u_buy, random() AS u_n, random() AS u_tail, random() AS u_src, random() AS u_age,
           random() AS u_first, random() AS u_life, random() AS u_spend, random() AS u_act, random() AS u_intent,
           random() AS u_adv
    FROM generate_series(1, ${customers}) AS i)
SELECT i, md5('p' || i)::uuid AS id,
       CASE WHEN u_buy >= ${buyer_share} THEN 0
            WHEN u_tail < 0.05 THEN 6 + floor(u_n * 7)::int
            ELSE least(12, 1 + floor(ln(1 - u_n) / ln(0.45))::int) END AS n_orders,
       ${source_case} AS src,
       date_trunc('second', ${end} - interval '1 day' - interval '729 days' * power(u_age, 1.3)) AS first_seen,
       u_first, u_life, 25 + 150 * power(u_spend, 2) AS spend, u_act, u_intent < 0.45 AS intent,
       u_adv < 0.3 AS advocate
FROM drawn;
CREATE TEMP TABLE bench_orders AS
WITH timed AS (
    SELECT c.i, c.id, c.spend, k,
           CASE WHEN k = 1 THEN f.first_order
                ELSE f.first_order + (${end} - f.first_order) * c.u_life * random() END AS at,
           random() AS u1, random() AS u2, random() AS u_cost, random() AS u_margin
    FROM bench_customers c
    CROSS JOIN LATERAL (SELECT c.first_seen + interval '10 minutes'
                               + least(interval '30 days' * power(c.u_first, 3), (${end} - c.first_seen) / 2)
                               AS first_order) f
    CROSS JOIN LATERAL generate_series(1, c.n_orders) AS k),
amounts AS (
    SELECT i, id, row_number() OVER (PARTITION BY i ORDER BY at, k) AS n, date_trunc('second', at) AS at,
           round(greatest(2, spend * exp(0.4 * sqrt(-2 * ln(1 - u1)) * cos(2 * pi() * u2)))::numeric, 2) AS amount,
           u_cost, u_margin
    FROM timed)
SELECT i, id, n, at, amount, 'ev-' || i || '-o' || n AS event_id, 'ord-' || i || '-' || n AS order_id,
       CASE WHEN u_cost < 0.85 THEN round(amount * (0.45 + 0.25 * u_margin)::numeric, 2) END AS cost
FROM amounts;
CREATE TEMP TABLE bench_quota AS
WITH weights AS (
    SELECT i, ((1 + 2 * n_orders + CASE WHEN intent THEN 2 ELSE 0 END) * (0.3 + 1.4 * u_act))::numeric(12, 6)
              AS weight
    FROM bench_customers),
spare AS (SELECT ${events} - ${customers} - (SELECT count(*) FROM bench_orders) AS n),
cumulative AS (
    SELECT i, floor((SELECT n FROM spare) * sum(weight) OVER (ORDER BY i) / sum(weight) OVER ())::bigint AS upto
    FROM weights)
SELECT i, 1 + upto - coalesce(lag(upto) OVER (ORDER BY i), 0) AS fillers FROM cumulative;
INSERT INTO touchpoints (event_id, profile_id, name, event_time, properties, historical)
SELECT event_id, id, 'order_completed', at,
       jsonb_build_object('order_id', order_id, 'revenue', amount, 'currency', 'USD')
       || CASE WHEN cost IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('cost', cost) END, false
FROM bench_orders;
INSERT INTO touchpoints (event_id, profile_id, name, event_time, properties, historical)
SELECT 'ev-' || i || '-' || n, id, name, at,
       CASE WHEN n = 1 THEN jsonb_build_object('path', '/', 'utm_source', (${source_names})[src],
                                               'utm_medium', (${source_channels})[src])
            WHEN name = 'page_viewed' THEN jsonb_build_object('path', '/collections/' || floor(w * 40)::int)
            WHEN name IN ('product_viewed', 'product_added')
                THEN jsonb_build_object('product_id', 'p' || (1 + floor(w * 12)::int), 'price',
                                        (ARRAY[24, 26, 12, 19, 34, 39, 54, 64, 79, 89, 119, 179])
                                        [1 + floor(w * 12)::int])
            WHEN name = 'email_opened' THEN jsonb_build_object('campaign', 'newsletter-' || floor(w * 24)::int)
            WHEN name = 'identify' THEN jsonb_build_object('email', 'cust-' || i || '@example.com')
            ELSE jsonb_build_object('step', 1 + floor(w * 3)::int) END,
       false
FROM (SELECT i, id, n, src,
             CASE WHEN n = 1 OR u < 0.52 THEN 'page_viewed' WHEN u < 0.77 THEN 'product_viewed'
                  WHEN u < 0.86 THEN 'product_added' WHEN u < 0.90 THEN 'checkout_started'
                  WHEN u < 0.95 THEN 'email_opened' ELSE 'identify' END AS name,
             CASE WHEN n = 1 THEN first_seen
                  ELSE date_trunc('second', first_seen + (${end} - first_seen) * v) END AS at,
             w
      FROM (SELECT c.i, c.id, c.src, c.first_seen, g.n, random() AS u, random() AS v, random() AS w
            FROM bench_customers c JOIN bench_quota q USING (i), generate_series(1, q.fillers) AS g(n)) drawn) x;
CREATE TEMP TABLE bench_last AS
SELECT DISTINCT ON (profile_id) profile_id, event_time, event_id, count(*) OVER (PARTITION BY profile_id) AS n
FROM touchpoints ORDER BY profile_id, event_time DESC, event_id DESC;
CREATE TEMP TABLE bench_steps AS
WITH buyers AS (
    SELECT i, count(*) AS n, min(at) AS o1, min(at) FILTER (WHERE n = 2) AS o2, max(at) AS last,
           greatest(interval '14 days', 2 * (max(at) - min(at)) / greatest(count(*) - 1, 1)) AS risk_after
    FROM bench_orders GROUP BY i),
steps AS (
    SELECT c.i, c.id, s.k, s.stage, date_trunc('second', s.at) AS at, s.reason, s.cause
    FROM bench_customers c LEFT JOIN buyers b USING (i)
    CROSS JOIN LATERAL (VALUES
        (1, 'awareness', c.first_seen, 'first_touchpoint', 'ev-' || c.i || '-1', true),
        (2, 'consideration', CASE WHEN b.o1 IS NULL THEN c.first_seen + (${end} - c.first_seen) * 0.5 * c.u_act
                                  ELSE c.first_seen + (b.o1 - c.first_seen) * 0.5 END,
         'intent_signal', 'ev-' || c.i || '-2', b.o1 IS NOT NULL OR c.intent),
        (3, 'purchase', b.o1, 'first_order', 'ev-' || c.i || '-o1', b.o1 IS NOT NULL),
        (4, 'retention', b.o2, 'repeat_order', 'ev-' || c.i || '-o2', b.o2 IS NOT NULL),
        (5, 'loyalty', b.o2 + interval '1 hour' + (b.last - b.o2) * 0.3, 'repeat_orders_and_advocacy',
         'ev-' || c.i || '-o2', b.o2 IS NOT NULL AND c.advocate),
        (6, 'at_risk', b.last + CASE WHEN b.n = 1 THEN interval '90 days' ELSE b.risk_after END, 'no_order',
         'ev-' || c.i || '-o' || b.n,
         b.last + CASE WHEN b.n = 1 THEN interval '90 days' ELSE b.risk_after END < ${end}),
        (7, 'lapsed', b.last + CASE WHEN b.n = 1 THEN interval '180 days' ELSE 2 * b.risk_after END, 'no_order',
         'ev-' || c.i || '-o' || b.n,
         b.last + CASE WHEN b.n = 1 THEN interval '180 days' ELSE 2 * b.risk_after END < ${end})
    ) AS s(k, stage, at, reason, cause, keep)
    WHERE s.keep)
SELECT i, id, k, lag(stage) OVER w AS from_stage, stage AS to_stage, at, reason, cause,
       k = max(k) OVER (PARTITION BY i) AS last_step
FROM steps WINDOW w AS (PARTITION BY i ORDER BY k);
INSERT INTO transitions (id, profile_id, customer_id, from_stage, to_stage, reason, rule_version, cause_event_ids,
                         event_time, processed_at, historical)
SELECT md5('t' || i || '-' || k)::uuid, id, 'cust-' || i, from_stage, to_stage, reason, 'default-v2', ARRAY[cause],
       at, at, false
FROM bench_steps ORDER BY at, i, k;
INSERT INTO profiles (id, customer_id, user_id, stage, stage_since, previous_stage, facts, traits, first_seen_at,
                      last_seen_at, acquisition, acquired_at)
SELECT c.id, 'cust-' || c.i, 'cust-' || c.i, s.to_stage, s.at, s.from_stage,
       jsonb_build_object('v', 3, 'touchpoints', l.n, 'intent', c.intent OR c.n_orders > 0,
                          'advocacy', c.advocate AND c.n_orders >= 2, 'orders', coalesce(o.orders, '[]'::jsonb),
                          'refunded_order_ids', '[]'::jsonb,
                          'last_event', jsonb_build_array(${last_time}, l.event_id),
                          'as_of', jsonb_build_array(${last_time}, l.event_id)),
       jsonb_build_object('email', 'cust-' || c.i || '@example.com',
                          'firstName', (ARRAY['Ann', 'Bo', 'Cai', 'Dana', 'Eli', 'Fay', 'Gus', 'Hal'])[1 + c.i % 8]),
       c.first_seen, l.event_time,
       jsonb_build_object('channel', (${source_channels})[c.src], 'source', (${source_names})[c.src]), c.first_seen
FROM bench_customers c
JOIN bench_last l ON l.profile_id = c.id
JOIN bench_steps s ON s.i = c.i AND s.last_step
LEFT JOIN (SELECT i, jsonb_agg(jsonb_build_array(order_id, amount::numeric(20, 6)::text, ${order_time}, event_id,
                                                 false) ORDER BY n) AS orders
           FROM bench_orders GROUP BY i) o ON o.i = c.i;
INSERT INTO identities (id_type, id_value, profile_id)
SELECT kind, CASE kind WHEN 'user' THEN 'cust-' || i ELSE 'anon-' || i END, id
FROM bench_customers, unnest(ARRAY['user', 'anonymous']) AS kind
""")

SHOP_FACTS = {
    "profiles": "SELECT count(*) FROM profiles",
    "buyers": "SELECT count(*) FROM profiles WHERE jsonb_array_length(facts->'orders') > 0",
    "orders": "SELECT coalesce(sum(jsonb_array_length(facts->'orders')), 0) FROM profiles",
    "touchpoints": "SELECT count(*) FROM touchpoints",
    "order_events": "SELECT count(*) FROM touchpoints WHERE name = 'order_completed'",
    "order_events_with_cost": "SELECT count(*) FROM touchpoints WHERE name = 'order_completed' AND properties ? 'cost'",
    "transitions": "SELECT count(*) FROM transitions",
    "revenue": "SELECT round(sum((properties->>'revenue')::numeric)) FROM touchpoints WHERE name = 'order_completed'",
}
SHOP_SHAPES = {
    "stages": "SELECT stage, count(*) FROM profiles GROUP BY 1 ORDER BY 1",
    "orders_per_customer": "SELECT jsonb_array_length(facts->'orders'), count(*) FROM profiles GROUP BY 1 ORDER BY 1",
    "sources": "SELECT acquisition->>'source', count(*) FROM profiles GROUP BY 1 ORDER BY 1",
    "events_by_name": "SELECT name, count(*) FROM touchpoints GROUP BY 1 ORDER BY 1",
}
CHAIN_BREAKS = """
SELECT count(*) FROM (SELECT from_stage, lag(to_stage) OVER (PARTITION BY profile_id ORDER BY event_time, seq) AS before
                      FROM transitions) t WHERE from_stage IS DISTINCT FROM before"""
STAGE_MISMATCHES = """
SELECT count(*) FROM profiles p JOIN LATERAL (SELECT to_stage FROM transitions t WHERE t.profile_id = p.id
                                               ORDER BY event_time DESC, seq DESC LIMIT 1) last ON true
WHERE last.to_stage IS DISTINCT FROM p.stage"""


async def fill(dsn: str, *, customers: int, events: int, end: datetime) -> dict[str, Any]:
    source_case, source_names, source_channels = _source_sql()
    sql = FILL.substitute(customers=customers, events=events, end=f"'{end.isoformat()}'::timestamptz",
                          buyer_share=BUYER_SHARE, source_case=source_case, source_names=source_names,
                          source_channels=source_channels, last_time=RFC.format("l.event_time"),
                          order_time=RFC.format("at"))
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        steps: dict[str, float] = {}
        for number, statement in enumerate(filter(str.strip, sql.split(";\n")), start=1):
            begun = time.perf_counter()
            await conn.execute(statement)
            steps[f"{number} {' '.join(statement.split()[:4])}"] = round(time.perf_counter() - begun, 2)
        filled_s = time.perf_counter() - started
        begun = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")  # the state autovacuum leaves a loaded table in
        vacuum_s = time.perf_counter() - begun
        shop = {name: int(await conn.fetchval(query)) for name, query in SHOP_FACTS.items()}
        if shop["touchpoints"] != events:
            raise RuntimeError(f"filled {shop['touchpoints']} touchpoints, not {events}")
        shop |= {name: {str(key): n for key, n in await conn.fetch(query)} for name, query in SHOP_SHAPES.items()}
        shop["transitions_per_customer"] = round(shop["transitions"] / customers, 2)
        shop["transition_chain_breaks"] = await conn.fetchval(CHAIN_BREAKS)  # from_stage != the previous to_stage
        shop["profiles_whose_stage_is_not_the_last_move"] = await conn.fetchval(STAGE_MISMATCHES)
        shop["table_sizes_mb"] = {row["relname"]: round(row["bytes"] / 2**20, 1) for row in await conn.fetch(
            "SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class WHERE relname IN "
            "('profiles', 'touchpoints', 'transitions', 'identities') ORDER BY relname")}
    finally:
        await conn.close()
    return {"fill_seconds": round(filled_s, 1), "vacuum_analyze_seconds": round(vacuum_s, 1),
            "fill_steps_seconds": steps, "end": end.isoformat(), "shop": shop}


# --- in-process: the reads of queries.py, and raw baselines -----------------------------------------

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


# --- over HTTP: the stage engine as its own process ------------------------------------------------------

async def reset_analytics(dsn: str) -> None:
    """No scores, snapshots or fits: the service starts as on its first day and refreshes at once."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE customer_scores, rfm_snapshots, clv_fits")
        await conn.execute("VACUUM ANALYZE customer_scores")
    finally:
        await conn.close()


async def first_refresh(url: str, started: float, *, timeout_s: float) -> dict[str, Any]:
    client = Pool(url, size=1, headers={"authorization": f"Bearer {TOKEN}"})
    try:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            response = await client.get("/v1/analytics/fits?limit=5")
            fits = response.json() if response.status_code == 200 else []
            done = [f for f in fits if f["kind"] == "scheduled" and f["status"] in ("done", "failed")]
            if done:
                return {"seconds_since_process_start": round(time.perf_counter() - started, 1),
                        "status": done[0]["status"], "scored_customers": done[0]["result"].get("scored_customers")}
            await asyncio.sleep(0.25)
        raise TimeoutError(f"no scheduled fit done after {timeout_s}s")
    finally:
        await client.aclose()


async def over_http(url: str, dsn: str, figures: dict[str, Any], *, concurrency: int, seconds: float) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        scored = [row[0] for row in await conn.fetch("SELECT customer_id FROM customer_scores")]
    finally:
        await conn.close()
    client = Pool(url, size=concurrency, headers={"authorization": f"Bearer {TOKEN}"})
    await client.open(concurrency, stagger_s=0.01)
    sizes: dict[str, int] = {}

    def endpoint(name: str, path_of):
        async def call(rng) -> bool:
            response = await client.get(path_of(rng))
            sizes[name] = len(response.content)
            return response.status_code == 200
        return call

    endpoints = {
        "healthz": lambda rng: "/healthz",
        "stages": lambda rng: "/v1/analytics/stages",
        "funnel": lambda rng: "/v1/analytics/funnel",
        "cohorts": lambda rng: "/v1/analytics/cohorts",
        "rfm": lambda rng: "/v1/analytics/rfm",
        "clv": lambda rng: "/v1/analytics/clv",
        "transitions": lambda rng: "/v1/analytics/transitions",
        "customers_csv_champions": lambda rng: "/v1/analytics/customers.csv?segment=Champions",
        "customer_profile_with_scores": lambda rng: f"/v1/customers/{rng.choice(scored)}",
    }
    # What the in-process reads took for the same work (the raw baseline of each endpoint).
    in_process_ms = {"stages": ("stage_counts", "stage_mix_2y_month"), "funnel": ("funnel_90d",),
                     "cohorts": ("cohorts",), "transitions": ("recent_transitions_50",)}
    results: dict[str, Any] = {}
    try:
        sample = await client.get(f"/v1/customers/{random.Random(1).choice(scored)}")
        results["profile_has_scores"] = sample.status_code == 200 and sample.json().get("scores") is not None
        for name, path_of in endpoints.items():
            await endpoint(name, path_of)(random.Random(0))  # warm-up
            figure = await closed_loop(endpoint(name, path_of), concurrency=concurrency, seconds=seconds)
            figure["response_bytes"] = sizes.get(name)
            results[name] = figure
        floor = results["healthz"]["latency_ms"]["p50"]
        for name, figure in results.items():
            if not isinstance(figure, dict) or name == "healthz":
                continue
            figure["p50_ratio_to_healthz"] = round(figure["latency_ms"]["p50"] / floor, 1)
            if name in in_process_ms:
                raw = sum(figures[read]["median_ms"] for read in in_process_ms[name])
                figure["in_process_reads"] = in_process_ms[name]
                figure["p50_ratio_to_in_process_reads"] = round(figure["latency_ms"]["p50"] / raw, 2)
        results["customers_csv_champions"]["rows"] = max(
            0, (await client.get("/v1/analytics/customers.csv?segment=Champions")).content.count(b"\n") - 1)

    finally:
        await client.aclose()
    # What the dashboard asks for on load: the six calls at once, on six connections (as a browser does).
    page = ("stages", "funnel", "cohorts", "rfm", "clv", "transitions")
    browser_like = Pool(url, size=len(page), headers={"authorization": f"Bearer {TOKEN}"})
    await browser_like.open(len(page), stagger_s=0.01)
    try:
        loads = []
        for _ in range(5):
            started = time.perf_counter()
            answers = await asyncio.gather(*(browser_like.get(endpoints[name](None)) for name in page))
            loads.append((time.perf_counter() - started) * 1000)
            assert all(a.status_code == 200 for a in answers)
    finally:
        await browser_like.aclose()
    serial = sum(results[name]["latency_ms"]["p50"] for name in page)
    results["dashboard_api_calls_all_at_once"] = {
        "calls": page, "loads": len(loads), "latency_ms": percentiles(loads, points=(50, 99)),
        "sum_of_p50s_one_by_one_ms": round(serial, 1),
        "p50_ratio_to_sum_one_by_one": round(percentiles(loads, points=(50,))["p50"] / serial, 2)}
    return results


PAINT = """() => {
    const resources = performance.getEntriesByType('resource');
    const api = resources.filter((r) => r.name.includes('/v1/analytics/'));
    return {
        fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime ?? null,
        ready: (window.dashboardTiming || {}).readyMs ?? null,
        apiStart: api.length ? Math.min(...api.map((r) => r.startTime)) : null,
        apiDone: api.length ? Math.max(...api.map((r) => r.responseEnd)) : null,
        api: api.map((r) => [new URL(r.name).pathname, Math.round(r.duration)]),
        transferred: resources.reduce((n, r) => n + r.transferSize, 0)};
}"""


async def _paint(context, url: str) -> dict[str, Any]:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    started = time.perf_counter()
    await page.goto(f"{url}/dashboard#token={TOKEN}")
    # A selector, not a JS predicate: the page's CSP has no 'unsafe-eval'.
    await page.wait_for_selector("body[data-ready='true']", state="attached", timeout=180_000)
    wall = (time.perf_counter() - started) * 1000
    measured = await page.evaluate(PAINT)
    await page.close()

    def ms(key: str) -> float | None:
        return None if measured[key] is None else round(measured[key], 1)

    return {"first_contentful_paint_ms": ms("fcp"), "data_ready_ms": ms("ready"),
            "api_calls_started_ms": ms("apiStart"), "api_answers_done_ms": ms("apiDone"),
            "api_call_durations_ms": dict(measured["api"]), "wall_to_ready_ms": round(wall, 1),
            "bytes_transferred": measured["transferred"], "page_errors": errors}


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"loads": runs}
    for key in ("first_contentful_paint_ms", "api_calls_started_ms", "api_answers_done_ms", "data_ready_ms",
                "wall_to_ready_ms"):
        values = [run[key] for run in runs if run[key] is not None]
        out[f"median_{key}"] = round(statistics.median(values), 1) if values else None
    return out


async def dashboard_paint(url: str, *, loads: int = 3) -> dict[str, Any]:
    """First contentful paint and `data-ready` of GET /dashboard in headless Chromium: cold (a fresh
    context per load: no cache, plotly.js over the wire) and warm (a returning visitor: one context, its
    files cached - they are served immutable), the median of `loads` each. Times are from navigation start."""
    from lifecycle_devstack.clients import ensure_chromium
    from playwright.async_api import async_playwright

    chromium = ensure_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                                   args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            cold = []
            for _ in range(loads):
                context = await browser.new_context()
                cold.append(await _paint(context, url))
                await context.close()
            context = await browser.new_context()
            await _paint(context, url)  # the first visit fills the cache
            warm = [await _paint(context, url) for _ in range(loads)]
            await context.close()
        finally:
            await browser.close()
    return {"cold": _medians(cold), "warm": _medians(warm)}


# --- the run ---------------------------------------------------------------------------------------------

class CpuWatch:
    """Per phase: the wall time, the CPU the machine spent (in cores busy) and how much of it was this run's
    (this process and its descendants: PostgreSQL, the service, the scoring process) - whatever else runs on
    the machine (other test runs) competes for the same cores."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}

    @staticmethod
    def _ours() -> float:
        total = 0.0
        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    @staticmethod
    def _machine() -> tuple[float, float]:
        times = psutil.cpu_times()
        busy = times.user + times.nice + times.system + getattr(times, "irq", 0) + getattr(times, "softirq", 0)
        return busy, getattr(times, "steal", 0.0)

    @contextmanager
    def phase(self, name: str):
        started, ours, (busy, steal) = time.perf_counter(), self._ours(), self._machine()
        try:
            yield
        finally:
            wall = time.perf_counter() - started
            ours, (busy, steal) = self._ours() - ours, [b - a for a, b in zip((busy, steal), self._machine(),
                                                                               strict=True)]
            self.phases[name] = {"wall_s": round(wall, 1), "machine_busy_cores": round(busy / wall, 2),
                                 "this_run_cores": round(ours / wall, 2),
                                 "other_processes_cores": round(max(0.0, busy - ours) / wall, 2),
                                 "steal_cores": round(steal / wall, 2),
                                 "load_average_1m_at_end": round(os.getloadavg()[0], 2)}

async def server_facts(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        settings = {name: await conn.fetchval(f"SHOW {name}") for name in (
            "shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather", "fsync", "random_page_cost")}
        return {"postgres": (await conn.fetchval("SHOW server_version")), "postgres_settings": settings}
    finally:
        await conn.close()


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu_count": os.cpu_count(), "cpu_model": model,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": sys.version.split()[0],
            "platform": platform.platform(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds")}


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
    report: dict[str, Any] = {"machine": machine(), "code": code_version(),
                              "parameters": {k: v for k, v in vars(args).items() if k != "out"}}
    watch = CpuWatch()
    infra = Infra.start()
    process = None
    try:
        config, service, dsn = fresh_stage_engine_database(infra)
        database_url = config.database_url(service)
        report["machine"] |= asyncio.run(server_facts(dsn))
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
