"""The shop `bench/analytics.py` measures, made by SQL in a fresh stage-engine database (set-based,
generate_series): customers acquired over two years from six sources, 60% of them buyers (most with one or
two orders, a tail of frequent buyers; varied amounts, costs on most orders), a touchpoints table of N
events (the order events among them matching the profiles' stored orders), and each customer's stage
history (a chain: each move starts where the one before ended, the last one is the profile's stage)."""

from __future__ import annotations

import time
from datetime import datetime
from string import Template
from typing import Any

import asyncpg

# (source, channel) of the customers' first touch, and the share of customers from each.
SOURCES = [("google", "cpc", 0.28), ("facebook", "paid_social", 0.18), ("instagram", "social", 0.17),
           ("newsletter", "email", 0.12), ("partner-blog", "referral", 0.13), ("duckduckgo", "organic", 0.12)]
BUYER_SHARE = 0.6


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


# --- in-process: the reads of db/analytics.py, and raw baselines -----------------------------------------


async def database_facts(dsn: str) -> dict[str, Any]:
    """The PostgreSQL version and the settings the figures depend on."""
    conn = await asyncpg.connect(dsn)
    try:
        settings = {name: await conn.fetchval(f"SHOW {name}") for name in (
            "shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather", "fsync", "random_page_cost")}
        return {"postgres": (await conn.fetchval("SHOW server_version")), "postgres_settings": settings}
    finally:
        await conn.close()
