"""End-to-end latency at a fixed offered load (open loop), two ways.

Every customer i posts one "Order Completed" with a fresh userId at t0 + i/rate, whatever the
earlier ones are doing. Then:

polled:      every `probe_every`-th customer is a probe: two pollers (every `poll_s`, 10 ms) wait
             for the stage engine's `GET /v1/customers/{id}` to show stage "purchase" and for
             loyalty's `GET /v1/customers/{id}/balance` to show `entries >= 1`; time from the
             POST's start. The reads go to each service's `serve --role api` process when the
             harness started one (`Harness.start_read_apis`, run.py's default), as the chart
             deploys them; else to the consuming process, whose event loop then answers them
             between batches - there polling every customer every 10 ms at 50 customers/s
             measurably slows the stage engine (the "all customers polled" variant).
server-side: after the phase, without any polling during it, every customer's stage transition
             `processed_at` (set by the stage engine just before its commit) and loyalty ledger
             entry `created_at` (PostgreSQL now(): its transaction's start) are read back and
             compared with the POST's wall-clock start. Same machine, same clock.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from harness import Harness
from http_load import basic_auth, percentiles
from payloads import order_body
from rawhttp import TRANSPORT_ERRORS, make_pool

Phase = Callable[[str], None]


async def _poll(pool, path: str, ready: Callable[[dict], bool], *, since: float, poll_s: float,
                timeout_s: float, polls: Counter) -> float | None:
    while time.perf_counter() - since < timeout_s:
        try:
            response = await pool.get(path)
            polls[response.status_code] += 1
            if response.status_code == 200 and ready(response.json()):
                return (time.perf_counter() - since) * 1000
        except TRANSPORT_ERRORS as error:
            polls[type(error).__name__] += 1
        await asyncio.sleep(poll_s)
    return None


async def _server_side(stage, loyalty, sent_wall: dict[str, float]) -> dict:
    """ms from POST start to the transition's processed_at / the ledger entry's created_at."""
    to_stage, to_ledger, missing = [], [], Counter()
    slots = asyncio.Semaphore(16)

    async def one(user: str, sent: float) -> None:
        async with slots:
            transitions = await stage.get(f"/v1/customers/{user}/transitions")
            ledger = await loyalty.get(f"/v1/customers/{user}/ledger")
        rows = [t for t in transitions.json() if t["to_stage"] == "purchase"] if transitions.status_code == 200 else []
        if rows:
            to_stage.append((datetime.fromisoformat(rows[0]["processed_at"]).timestamp() - sent) * 1000)
        else:
            missing["stage"] += 1
        entries = ledger.json() if ledger.status_code == 200 else []
        if entries:
            to_ledger.append((datetime.fromisoformat(entries[0]["created_at"]).timestamp() - sent) * 1000)
        else:
            missing["loyalty"] += 1

    await asyncio.gather(*[one(user, sent) for user, sent in sent_wall.items()])
    return {"to_stage_processed_at_ms": percentiles(to_stage), "to_ledger_created_at_ms": percentiles(to_ledger),
            "missing": dict(missing)}


METRICS = ("lifecycle_consumer_record_age_at_poll_seconds", "lifecycle_consumer_batch_seconds")


async def scrape_histograms(pool) -> dict:
    response = await pool.get("/metrics")
    if response.status_code != 200:
        return {}
    series: dict[str, dict] = {}
    for line in response.content.decode().splitlines():
        if not line.startswith(METRICS) or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, _, labels = name_labels.partition("{")
        fields = dict(part.split("=", 1) for part in labels.rstrip("}").split(",") if "=" in part)
        le = fields.pop("le", None)
        key = ":".join([name.removeprefix("lifecycle_consumer_").rsplit("_", 1)[0].removesuffix("_seconds"),
                        *(v.strip('"') for k, v in sorted(fields.items()))])
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix):
                entry = series.setdefault(key, {"buckets": []})
                if suffix == "_bucket":
                    entry["buckets"].append((float(le.strip('"')), float(value)))
                else:
                    entry[suffix[1:]] = float(value)
    return series


def histogram_delta(before: dict, after: dict) -> dict:
    """The consumers' own histograms over the phase (after - before): mean and bucket-bound p50/p99 in ms."""
    out = {}
    for key, entry in after.items():
        earlier = before.get(key, {"buckets": []})
        entry = {"count": entry.get("count", 0) - earlier.get("count", 0),
                 "sum": entry.get("sum", 0) - earlier.get("sum", 0),
                 "buckets": [(le, n - dict(earlier["buckets"]).get(le, 0)) for le, n in entry["buckets"]]}
        count = entry.get("count", 0)
        if not count:
            continue
        def bound(q: float, buckets: list = entry["buckets"], count: float = count) -> float:
            return next((le for le, n in buckets if n >= q * count), float("inf")) * 1000
        out[key] = {"count": int(count), "mean_ms": round(entry["sum"] / count * 1000, 1),
                    "p50_le_ms": bound(0.5), "p99_le_ms": bound(0.99)}
    return out


async def latency(harness: Harness, *, rate: float, duration_s: float, poll_s: float, timeout_s: float,
                  phase: Phase, client_kind: str, probe_every: int = 1, server_side: bool = True) -> dict:
    count = int(rate * duration_s)
    run = uuid.uuid4().hex[:6]
    rng = random.Random()  # fresh messageIds every run: the consumers' inbox drops repeats
    users = [f"lat-{run}-{i:05d}" for i in range(count)]
    bodies = [order_body(user, revenue=round(rng.uniform(10, 200), 2), rng=rng) for user in users]
    headers = {"authorization": basic_auth(harness.write_key), "content-type": "application/json"}
    ingest = make_pool(client_kind, harness.url("ingest"), size=64, headers=headers)
    stage = make_pool(client_kind, harness.read_url("stage-engine"), size=128, headers=harness.read_headers)
    loyalty = make_pool(client_kind, harness.read_url("loyalty"), size=128, headers=harness.read_headers)
    # The consumers' own timings come from the consuming processes' /metrics.
    scrapes = {name: make_pool(client_kind, harness.url(name), size=2, headers=harness.read_headers)
               for name in ("stage-engine", "loyalty")}
    ack, to_stage, to_loyalty, lag, errors, polls = [], [], [], [], Counter(), Counter()
    sent_wall: dict[str, float] = {}
    t0 = time.perf_counter() + 0.5

    async def customer(i: int) -> None:
        scheduled = t0 + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        sent, wall = time.perf_counter(), time.time()
        lag.append((sent - scheduled) * 1000)
        try:
            response = await ingest.post("/v1/track", bodies[i])
        except TRANSPORT_ERRORS as error:
            errors[type(error).__name__] += 1
            return
        if response.status_code != 200:
            errors[f"http_{response.status_code}"] += 1
            return
        ack.append((time.perf_counter() - sent) * 1000)
        sent_wall[users[i]] = wall
        if i % probe_every:
            return
        staged, earned = await asyncio.gather(
            _poll(stage, f"/v1/customers/{users[i]}", lambda p: p.get("stage") == "purchase",
                  since=sent, poll_s=poll_s, timeout_s=timeout_s, polls=polls),
            _poll(loyalty, f"/v1/customers/{users[i]}/balance", lambda b: b.get("entries", 0) >= 1,
                  since=sent, poll_s=poll_s, timeout_s=timeout_s, polls=polls))
        for value, into, name in ((staged, to_stage, "stage_timeout"), (earned, to_loyalty, "loyalty_timeout")):
            if value is None:
                errors[name] += 1
            else:
                into.append(value)

    scraped = {name: await scrape_histograms(pool) for name, pool in scrapes.items()}
    phase("start")
    started = time.perf_counter()
    try:
        await asyncio.gather(*[customer(i) for i in range(count)])
        elapsed = time.perf_counter() - started
        phase("end")
        result = {
            "customers": count, "probed_customers": len(range(0, count, probe_every)), "probe_every": probe_every,
            "offered_rate_per_s": rate, "duration_s": duration_s, "poll_interval_ms": poll_s * 1000,
            "client": client_kind, "post_ack_ms": percentiles(ack), "to_stage_purchase_ms": percentiles(to_stage),
            "to_loyalty_entry_ms": percentiles(to_loyalty), "send_lag_behind_schedule_ms": percentiles(lag),
            "errors": dict(errors), "polls": {str(k): v for k, v in polls.items()},
            "polls_per_s": round(sum(polls.values()) / elapsed, 1), "seconds": round(elapsed, 2),
            "raw_ms": {"post_ack": [round(v, 1) for v in ack], "to_stage_purchase": [round(v, 1) for v in to_stage],
                       "to_loyalty_entry": [round(v, 1) for v in to_loyalty]}}
        if server_side:
            await asyncio.sleep(1.0)  # the last customers' events are still on their way
            result["server_side"] = await _server_side(stage, loyalty, sent_wall)
        result["consumer_timings"] = {name: histogram_delta(scraped[name], await scrape_histograms(pool))
                                      for name, pool in scrapes.items()}
        result["reads_served_by"] = {"stage-engine": harness.read_url("stage-engine"),
                                     "loyalty": harness.read_url("loyalty")}
        return result
    finally:
        for pool in (ingest, stage, loyalty, *scrapes.values()):
            await pool.aclose()
