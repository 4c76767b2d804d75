"""Webhook delivery: deliveries per second to a local receiver and the time from a transition to its delivery,
next to a raw baseline (an httpx client posting the same bodies to the same receiver) measured in the same run.

Starts an embedded PostgreSQL (and the broker `Infra` starts; unused), migrates a messaging database, and a
receiver in a process of its own (plain asyncio HTTP/1.1, answers 200 at once, notes when each request
arrived: CLOCK_MONOTONIC is shared by every process). Then:

1. backlog: N stage transitions fanned out through messaging's real consumer runner and routes to E
   endpoints (all on the receiver), then the delivery worker (the service's own loop, signing included)
   started and timed until all N x E have arrived -> deliveries/s; baseline: the same bodies posted by one
   httpx.AsyncClient with E streams (one per endpoint, as the worker serialises per endpoint) -> posts/s;
2. latency, open loop at R transitions/s: from the consumer's commit of the fan-out to the receiver having
   it (p50/p99; the worker polls for due deliveries every `webhooks_idle_poll_s`); baseline: from the
   start of a direct post to the receiver having it.

    .venv/bin/python bench/webhooks.py [--events 5000] [--endpoints 1,8] [--rate 50] [--seconds 10]

Measurement only: nothing asserts timings. Writes bench/webhooks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db import webhooks as db
from lifecycle_messaging.db.models import webhook_endpoints
from lifecycle_messaging.domain.webhooks import SECRET_BYTES, new_secret
from lifecycle_messaging.handlers import routes_and_webhooks
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_messaging.workers.webhooks import webhook_worker
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import STAGE_CHANGED_TYPE, CloudEvent
from lifecycle_shared.kafka.runner import ConsumerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import code_version  # noqa: E402

EVENT_TIME = datetime(2026, 5, 1, tzinfo=UTC)
FRESHNESS = Freshness(clock=lambda: EVENT_TIME, window=timedelta(days=1))  # the transitions are news


# ---- the receiver, in a process of its own -------------------------------------------------------------------

def _receive(port_out: Any) -> None:
    arrivals: dict[str, float] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                await reader.readexactly(int(headers.get("content-length", "0")))
                if lines[0].startswith("GET /arrivals"):
                    body = json.dumps(arrivals).encode()
                    arrivals.clear()
                else:
                    arrivals.setdefault(headers.get("webhook-id") or headers.get("x-bench-id", ""), time.monotonic())
                    body = b"ok"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
        port_out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def arrivals(base: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        return (await client.get(base + "/arrivals", timeout=30)).json()


# ---- the product ------------------------------------------------------------------------------------------------

def transition() -> CloudEvent:
    customer = f"c-{uuid.uuid4().hex[:10]}"
    data = {"customer_id": customer, "user_id": customer, "anonymous_ids": [], "from_stage": "consideration",
            "to_stage": "purchase", "reason": "first_order", "rule_version": "default-v2",
            "cause_event_ids": [str(uuid.uuid4())], "event_time": EVENT_TIME.isoformat(),
            "processed_at": EVENT_TIME.isoformat(),  # its thank-you email is queued too (not sent here)
            "traits": {"email": f"{customer}@example.com", "firstName": "Ann"}, "orders": 1, "revenue": 42.5}
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=EVENT_TIME,
                      subject=customer, data=data)


def record(event: CloudEvent, offset: int):
    from aiokafka.structs import ConsumerRecord

    value, key = event.to_bytes(), event.subject.encode()
    return ConsumerRecord(topic="bench", partition=0, offset=offset, timestamp=0, timestamp_type=0, key=key,
                          value=value, checksum=None, serialized_key_size=len(key), serialized_value_size=len(value),
                          headers=[])


async def endpoints(engine, base: str, count: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(webhook_endpoints.delete())
        for n in range(count):
            await db.add_endpoint(conn, {"id": "ep_" + uuid.uuid4().hex, "url": f"{base}/hook/{n}",
                                         "secret": new_secret(bytes(range(SECRET_BYTES))),
                                         "event_types": [STAGE_CHANGED_TYPE]})


def runner(engine) -> ConsumerRunner:
    return ConsumerRunner(name="bench", consumer=None, producer=None, engine=engine,
                          route=routes_and_webhooks(brand="Shop", freshness=FRESHNESS))


async def run_worker(engine, settings: MessagingSettings):
    return asyncio.create_task(webhook_worker(settings)(SimpleNamespace(engine=engine)))


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def backlog(engine, base: str, settings: MessagingSettings, *, events: int, endpoint_count: int) -> dict:
    await endpoints(engine, base, endpoint_count)
    consumer = runner(engine)
    made = [transition() for _ in range(events)]
    started = time.perf_counter()
    for start in range(0, events, 500):
        await consumer.process([record(e, start + n) for n, e in enumerate(made[start:start + 500])])
    fan_out_s = time.perf_counter() - started
    await arrivals(base)  # cleared
    expected, seen = events * endpoint_count, 0
    started = time.perf_counter()
    worker = await run_worker(engine, settings)
    try:
        while seen < expected:
            await asyncio.sleep(0.2)
            seen += len(await arrivals(base))
    finally:
        await stop(worker)
    took = time.perf_counter() - started
    bodies = [e.to_bytes() for e in made]  # about the payload's size
    return {"endpoints": endpoint_count, "deliveries": expected, "fan_out_s": round(fan_out_s, 2),
            "fan_out_rows_per_s": round(expected / fan_out_s), "deliver_s": round(took, 2),
            "deliveries_per_s": round(expected / took), "body_bytes": statistics.median(len(b) for b in bodies)}


async def baseline_posts(base: str, *, posts: int, streams: int, body: bytes) -> dict:
    await arrivals(base)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=streams * 2)) as client:
        per = posts // streams

        async def stream(n: int) -> None:
            for i in range(per):
                await client.post(f"{base}/hook/{n}", content=body, headers={"x-bench-id": f"{n}-{i}",
                                                                             "content-type": "application/json"})

        started = time.perf_counter()
        await asyncio.gather(*(stream(n) for n in range(streams)))
        took = time.perf_counter() - started
    await arrivals(base)
    return {"streams": streams, "posts": per * streams, "seconds": round(took, 2),
            "posts_per_s": round(per * streams / took)}


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


async def latency(engine, base: str, settings: MessagingSettings, *, rate: float, seconds: float) -> dict:
    await endpoints(engine, base, 1)
    consumer, committed = runner(engine), {}
    worker = await run_worker(engine, settings)
    await arrivals(base)
    try:
        total, offset = int(rate * seconds), 0
        began = time.perf_counter()
        for n in range(total):
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            event = transition()
            await consumer.process([record(event, offset)])
            offset += 1
            committed[event.id] = time.monotonic()
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while len(seen) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            seen |= await arrivals(base)
    finally:
        await stop(worker)
    async with engine.connect() as conn:
        rows = {r.webhook_id: r.event_id for ep in await db.all_endpoints(conn)
                for r in await db.deliveries_of(conn, ep.id)}
    gaps = [seen[w] - committed[e] for w, e in rows.items() if w in seen and e in committed]
    return {"rate_per_s": rate, "seconds": seconds, "idle_poll_s": settings.webhooks_idle_poll_s, **percentiles(gaps)}


async def baseline_latency(base: str, *, rate: float, seconds: float, body: bytes) -> dict:
    await arrivals(base)
    sent: dict[str, float] = {}
    async with httpx.AsyncClient() as client:
        began, tasks = time.perf_counter(), []
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            sent[str(n)] = time.monotonic()
            tasks.append(asyncio.create_task(client.post(base + "/hook/0", content=body,
                                                         headers={"x-bench-id": str(n)})))
        await asyncio.gather(*tasks)
    seen = await arrivals(base)
    return {"rate_per_s": rate, **percentiles([seen[k] - sent[k] for k in sent if k in seen])}


async def measure(database_url: str, base: str, args: argparse.Namespace) -> dict:
    engine = create_engine(database_url, pool_size=20)
    settings = MessagingSettings(environment="development", webhooks_endpoints_in_flight=16)
    body = transition().to_bytes()
    report: dict[str, Any] = {"backlog": [], "latency": {}}
    try:
        for count in args.endpoints:
            product = await backlog(engine, base, settings, events=args.events,
                                    endpoint_count=count)
            raw = await baseline_posts(base, posts=product["deliveries"], streams=count, body=body)
            product["baseline"] = raw
            product["ratio_to_baseline"] = round(product["deliveries_per_s"] / raw["posts_per_s"], 2)
            report["backlog"].append(product)
            print(f"{count} endpoint(s): {product['deliveries_per_s']} deliveries/s vs {raw['posts_per_s']} raw "
                  f"posts/s (x{product['ratio_to_baseline']}); fan-out {product['fan_out_rows_per_s']} rows/s",
                  file=sys.stderr)
        product = await latency(engine, base, settings, rate=args.rate, seconds=args.seconds)
        raw = await baseline_latency(base, rate=args.rate, seconds=args.seconds, body=body)
        report["latency"] = {"transition_to_delivery": product, "baseline_post": raw}
        print(f"transition -> delivery at {args.rate}/s: p50 {product['p50_ms']} ms, p99 {product['p99_ms']} ms; "
              f"raw post p50 {raw['p50_ms']} ms, p99 {raw['p99_ms']} ms", file=sys.stderr)
    finally:
        await engine.dispose()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--endpoints", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "webhooks.json")
    args = parser.parse_args()
    ports: Any = multiprocessing.Queue()
    receiver = multiprocessing.Process(target=_receive, args=(ports,), daemon=True)
    receiver.start()
    base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    infra = Infra.start()
    try:
        config = infra.stack_config()
        infra.prepare(config, services=[BY_NAME["messaging"]])
        report = {"code": code_version(), "parameters": {k: v for k, v in vars(args).items() if k != "out"},
                  **asyncio.run(measure(config.database_url(BY_NAME["messaging"]), base, args))}
    finally:
        infra.stop()
        receiver.terminate()
        receiver.join(5)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
