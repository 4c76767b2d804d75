"""Loyalty: ledger entries applied per second and redemption latency under 50 concurrent clients, each next to
a raw baseline measured in the same run on the same PostgreSQL.

Starts an embedded PostgreSQL (and the broker `Infra` starts; unused), migrates a loyalty database, then:

1. ledger: N orders (N customers) through loyalty's real consumer runner and handlers, in batches of B (inbox,
   rules, lots, account locks, tiers, outbox) -> ledger entries applied/s; baseline: a plain batched INSERT of
   as many equivalent rows (same table, same batch size) -> rows/s;
2. redemptions: loyalty's API in a process of its own (`serve --role api`), C clients each redeeming in a loop
   for S seconds (each its own customer, points enough for all) -> p50/p99 of POST /redemptions; baseline:
   the same clients on the same server's `GET /healthz` (the HTTP stack, no database).

    .venv/bin/python bench/loyalty.py [--orders 5000] [--batch 500] [--clients 50] [--seconds 10]

Measurement only: nothing asserts timings. Writes bench/loyalty.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import BY_NAME, ServiceProcess
from lifecycle_loyalty.db.models import ledger_entries
from lifecycle_loyalty.handlers import routes
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import CloudEvent, TouchpointData
from lifecycle_shared.kafka.runner import ConsumerRunner
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import code_version  # noqa: E402

EVENT_TIME = datetime.now(UTC) - timedelta(days=30)  # past the 14 pending days: the points are available
TOKEN = "bench-loyalty-token-" + uuid.uuid4().hex
ADMIN = "bench-loyalty-admin-" + uuid.uuid4().hex


def order(customer: str, revenue: int) -> CloudEvent:
    data = TouchpointData(type="track", event="Order Completed", messageId=str(uuid.uuid4()), userId=customer,
                          properties={"order_id": "o-" + uuid.uuid4().hex[:8], "revenue": revenue},
                          timestamp=EVENT_TIME, receivedAt=EVENT_TIME)
    return CloudEvent(id=str(uuid.uuid4()), source="/sources/bench", type="touchpoint.order_completed",
                      time=EVENT_TIME, subject=customer, data=data.model_dump(mode="json"))


def record(event: CloudEvent, offset: int):
    from aiokafka.structs import ConsumerRecord

    value, key = event.to_bytes(), event.subject.encode()
    return ConsumerRecord(topic="touchpoints", partition=0, offset=offset, timestamp=0, timestamp_type=0, key=key,
                          value=value, checksum=None, serialized_key_size=len(key), serialized_value_size=len(value),
                          headers=[])


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}


async def count_entries(engine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(ledger_entries))).scalar() or 0)


async def ledger_phase(engine, customers: list[str], *, batch: int, revenue: int) -> dict:
    runner = ConsumerRunner(name="loyalty-bench", consumer=None, producer=None, engine=engine, route=routes())
    records = [record(order(c, revenue), offset) for offset, c in enumerate(customers)]
    before = await count_entries(engine)
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        await runner.process(records[i:i + batch])
    elapsed = time.perf_counter() - started
    entries = await count_entries(engine) - before
    product = {"orders": len(records), "entries": entries, "seconds": round(elapsed, 3),
               "entries_per_s": round(entries / elapsed, 1)}
    rows = [{"id": str(uuid.uuid4()), "customer_id": "raw-" + uuid.uuid4().hex[:10], "kind": "earn",
             "points": revenue, "rule": "points_per_currency_unit", "cause_event_id": str(uuid.uuid4()),
             "order_id": "o-raw", "rule_version": "default-v1", "lot_id": str(uuid.uuid4()),
             "effective_at": EVENT_TIME} for _ in range(entries)]
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        async with engine.begin() as conn:
            await conn.execute(insert(ledger_entries), rows[i:i + batch])
    elapsed = time.perf_counter() - started
    raw = {"rows": len(rows), "seconds": round(elapsed, 3), "rows_per_s": round(len(rows) / elapsed, 1)}
    return {**product, "baseline_batched_insert": raw,
            "ratio_to_baseline": round(product["entries_per_s"] / raw["rows_per_s"], 3)}


async def closed_loop(base: str, *, clients: int, seconds: float, call) -> dict:
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 limits=httpx.Limits(max_connections=clients)) as http:
        deadline = time.perf_counter() + seconds

        async def one(n: int) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    status: int | str = (await call(http, n)).status_code
                except httpx.HTTPError as error:  # counted, not timed: the report says how many
                    status = type(error).__name__
                else:
                    latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one(n) for n in range(clients)))
    return {**percentiles(latencies), "per_s": round(len(latencies) / seconds, 1), "statuses": statuses}


async def redemption_phase(base: str, customers: list[str], *, clients: int, seconds: float) -> dict:
    reward = "bench-" + uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=base) as http:
        answer = await http.put(f"/v1/admin/rewards/{reward}", headers={"authorization": f"Bearer {ADMIN}"},
                                json={"name": "bench", "kind": "discount_code", "cost": 1})
        answer.raise_for_status()
    headers = {"authorization": f"Bearer {TOKEN}"}

    def redeem(http: httpx.AsyncClient, n: int):
        return http.post(f"/v1/customers/{customers[n]}/redemptions", json={"reward_id": reward},
                         headers={**headers, "Idempotency-Key": str(uuid.uuid4())})

    product = await closed_loop(base, clients=clients, seconds=seconds, call=redeem)
    raw = await closed_loop(base, clients=clients, seconds=seconds, call=lambda http, n: http.get("/healthz"))
    return {"redemption": product, "baseline_healthz": raw,
            "p50_ratio": round(product["p50_ms"] / raw["p50_ms"], 2),
            "p99_ratio": round(product["p99_ms"] / raw["p99_ms"], 2)}


async def measure(database_url: str, base: str, args: argparse.Namespace) -> dict:
    engine = create_engine(database_url, pool_size=10)
    try:
        customers = [f"bench-{n:06d}" for n in range(args.orders)]
        ledger = await ledger_phase(engine, customers, batch=args.batch, revenue=1_000_000)
        print(f"ledger: {ledger['entries_per_s']} entries/s vs {ledger['baseline_batched_insert']['rows_per_s']} "
              f"raw rows/s (x{ledger['ratio_to_baseline']})", file=sys.stderr)
        redemptions = await redemption_phase(base, customers, clients=args.clients, seconds=args.seconds)
        product, raw = redemptions["redemption"], redemptions["baseline_healthz"]
        print(f"redemptions, {args.clients} clients: p50 {product['p50_ms']} ms, p99 {product['p99_ms']} ms "
              f"({product['per_s']}/s, {product['statuses']}); /healthz p50 {raw['p50_ms']} ms, "
              f"p99 {raw['p99_ms']} ms ({raw['per_s']}/s)", file=sys.stderr)
    finally:
        await engine.dispose()
    return {"ledger": ledger, "redemptions": redemptions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "loyalty.json")
    args = parser.parse_args()
    infra = Infra.start()
    server = None
    try:
        config = infra.stack_config(api_tokens=TOKEN)
        config = dataclasses.replace(config, extra_env={**config.extra_env, "LIFECYCLE_LOYALTY_ADMIN_TOKEN": ADMIN})
        infra.prepare(config, services=[BY_NAME["loyalty"]])
        server = ServiceProcess(BY_NAME["loyalty"], config, infra.work_dir / "loyalty-bench.log", role="api")
        server.start()
        server.wait_ready()
        report = {"code": code_version(), "parameters": {k: v for k, v in vars(args).items() if k != "out"},
                  **asyncio.run(measure(config.database_url(BY_NAME["loyalty"]), server.url, args))}
    finally:
        if server is not None:
            server.stop()
        infra.stop()
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
