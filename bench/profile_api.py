"""The profile API under a storefront's read load, with 100k profiles in the database.

Storefronts call `GET /v1/customers/{id}` while rendering a page, so its tail latency matters. This
fills a fresh stage-engine database with N profiles (each with two ids, three stored transitions and
realistic facts; user ids as bench/payloads.py's customer_id) by SQL, starts the stage engine as the
services run (its own process, uvicorn), and drives it closed-loop from C concurrent connections for D
seconds with random customers: the profile, their transitions, and the customer list by stage (cursor
pages). As a raw baseline in the same run,
the same profile lookups straight from PostgreSQL (asyncpg, the engine's own query shape, one
connection per client) - so the figure says what the HTTP service adds.

    .venv/bin/python bench/profile_api.py [--profiles 100000] [--concurrency 8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

import asyncpg
from http_load import percentiles
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import BY_NAME, ServiceDef, ServiceProcess, StackConfig
from payloads import customer_id
from rawhttp import Pool

TOKEN = "bench-api-token-4c1e7f20b9d3a865"
STAGES = ["awareness", "consideration", "purchase", "retention", "loyalty", "at_risk", "lapsed"]

FILL = """
INSERT INTO profiles (id, customer_id, user_id, stage, stage_since, previous_stage, facts, traits, first_seen_at,
                      last_seen_at, acquisition, acquired_at)
SELECT md5('p' || i)::uuid, 'cust-' || lpad(i::text, 6, '0'), 'cust-' || lpad(i::text, 6, '0'),
       ($2::text[])[1 + i % 7], now() - interval '3 days', 'purchase',
       jsonb_build_object('v', 3, 'touchpoints', 7, 'intent', true, 'advocacy', i % 5 = 0,
         'orders', jsonb_build_array(
             jsonb_build_array('o1', '42.500000', '2026-01-02T10:00:00+00:00', 'e1-' || i, false),
             jsonb_build_array('o2', '19.990000', '2026-02-02T10:00:00+00:00', 'e2-' || i, false)),
         'refunded_order_ids', '[]'::jsonb, 'last_event', jsonb_build_array('2026-02-02T10:00:00+00:00', 'e2-' || i),
         'as_of', jsonb_build_array('2026-02-02T10:00:00+00:00', 'e2-' || i)),
       jsonb_build_object('email', 'cust-' || lpad(i::text, 6, '0') || '@example.com', 'firstName', 'Ann'),
       now() - interval '90 days', now() - interval '1 day',
       '{"channel": "cpc", "source": "google"}'::jsonb, now() - interval '90 days'
FROM generate_series(1, $1) AS i;
INSERT INTO identities (id_type, id_value, profile_id)
SELECT kind, CASE kind WHEN 'user' THEN 'cust-' || lpad(i::text, 6, '0') ELSE 'anon-' || i END, md5('p' || i)::uuid
FROM generate_series(1, $1) AS i, unnest(ARRAY['user', 'anonymous']) AS kind;
INSERT INTO transitions (id, profile_id, customer_id, from_stage, to_stage, reason, rule_version, cause_event_ids,
                         event_time)
SELECT md5('t' || i || '-' || n)::uuid, md5('p' || i)::uuid, 'cust-' || lpad(i::text, 6, '0'),
       (ARRAY[NULL, 'awareness', 'purchase'])[n], (ARRAY['awareness', 'purchase', 'retention'])[n],
       'bench', 'default-v2',
       ARRAY['e' || n || '-' || i],
       now() - (4 - n) * interval '20 days'
FROM generate_series(1, $1) AS i, generate_series(1, 3) AS n;
ANALYZE;
"""


async def fill(dsn: str, profiles: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        for statement in filter(str.strip, FILL.split(";\n")):
            if "$1" in statement:
                await conn.execute(statement, profiles, *([STAGES] if "$2" in statement else []))
            else:
                await conn.execute(statement)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def closed_loop(call, *, concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal errors
        rng = random.Random(index)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            ok = await call(rng)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += not ok

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "per_s": round(len(latencies) / elapsed, 1), "errors": errors,
            "latency_ms": percentiles(latencies, points=(50, 90, 99))}


async def measure(url: str, dsn: str, *, profiles: int, concurrency: int, seconds: float) -> dict:
    client = Pool(url, size=concurrency, headers={"authorization": f"Bearer {TOKEN}"})  # raw: see rawhttp.py
    await client.open(concurrency, stagger_s=0.01)
    try:
        async def profile(rng) -> bool:
            return (await client.get(f"/v1/customers/{customer_id(rng.randint(1, profiles))}")).status_code == 200

        async def transitions(rng) -> bool:
            return (await client.get(f"/v1/customers/anon-{rng.randint(1, profiles)}/transitions")).status_code == 200

        async def list_page(rng) -> bool:
            stage = rng.choice(STAGES)
            first = await client.get(f"/v1/customers?stage={stage}&limit=100")
            cursor = first.json()["next_cursor"]
            second = await client.get(f"/v1/customers?stage={stage}&limit=100&cursor={cursor}")
            return first.status_code == second.status_code == 200

        await closed_loop(profile, concurrency=concurrency, seconds=2)  # warm-up: connections, caches, JIT of plans
        results = {"profile": await closed_loop(profile, concurrency=concurrency, seconds=seconds),
                   "transitions": await closed_loop(transitions, concurrency=concurrency, seconds=seconds),
                   "list_by_stage_two_pages": await closed_loop(list_page, concurrency=concurrency, seconds=seconds)}
    finally:
        await client.aclose()
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    try:
        async def raw(rng) -> bool:
            async with pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT p.* FROM profiles p JOIN identities i ON i.profile_id = p.id WHERE i.id_value = $1 "
                    "AND i.id_type IN ('user', 'anonymous') AND p.merged_into IS NULL ORDER BY i.id_type DESC LIMIT 1",
                    customer_id(rng.randint(1, profiles)))
                await conn.fetch("SELECT id_type, id_value FROM identities WHERE profile_id = $1", row["id"])
                return row is not None

        results["raw_sql_profile_baseline"] = await closed_loop(raw, concurrency=concurrency, seconds=seconds)
    finally:
        await pool.close()
    results["profile_per_s_ratio_to_raw_sql"] = round(results["profile"]["per_s"]
                                                      / results["raw_sql_profile_baseline"]["per_s"], 3)
    return results


def fresh_stage_engine_database(infra: Infra) -> tuple[StackConfig, ServiceDef, str]:
    """A stack config whose stage engine takes TOKEN, its database migrated, and that database's asyncpg DSN."""
    config = infra.stack_config(api_tokens=TOKEN)
    service = BY_NAME["stage-engine"]
    infra.prepare(config, services=[service])
    return config, service, config.database_url(service).replace("postgresql+asyncpg://", "postgresql://")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "profile_api.json")
    args = parser.parse_args()
    infra = Infra.start()
    process = None
    try:
        config, service, dsn = fresh_stage_engine_database(infra)
        filled_s = asyncio.run(fill(dsn, args.profiles))
        process = ServiceProcess(service, config, Path(tempfile.mkdtemp()) / "stage-engine.log")
        process.start()
        process.wait_ready()
        report = {"profiles": args.profiles, "transitions": 3 * args.profiles, "fill_seconds": round(filled_s, 1),
                  "concurrency": args.concurrency, "seconds": args.seconds,
                  **asyncio.run(measure(process.url, dsn, profiles=args.profiles, concurrency=args.concurrency,
                                        seconds=args.seconds))}
    finally:
        if process:
            process.stop()
        infra.stop()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
