"""The consuming side: stage-engine throughput over a pre-loaded backlog, and end-to-end latency.

backlog: stop the stage engine, produce K CloudEvents straight into the touchpoints topic, start
         it again and poll its /metrics every 100 ms until `lifecycle_events_consumed_total
         {consumer="stage-engine"}` (all outcomes) reaches K. The rate is taken from the first
         /metrics answer after start-up (the count already consumed by then is subtracted), so
         interpreter start-up and group join are not in it; they are reported apart.
latency: open loop: customer i posts one "Order Completed" at t0 + i/rate with a fresh userId,
         then two pollers (every `poll_s`) wait for the stage engine to show stage "purchase" and
         for loyalty's balance to show `entries >= 1`. Times are from the POST's start.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable

import httpx
from aiokafka import AIOKafkaProducer

from harness import Harness, metric_by_label, metric_sum, metrics_text
from http_load import basic_auth, percentiles
from lifecycle_shared.events import CONTENT_TYPE_HEADER
from payloads import order_body

Phase = Callable[[str], None]
CONSUMED = "lifecycle_events_consumed_total"


async def produce_backlog(harness: Harness, records: list[tuple[bytes, bytes]]) -> dict:
    kafka = harness.kafka()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=5,
                                max_batch_size=64 * 1024, enable_idempotence=kafka.enable_idempotence)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(kafka.topics.touchpoints, value, key=key, headers=[CONTENT_TYPE_HEADER])
                   for key, value in records]
        await asyncio.gather(*futures)
        return {"records": len(records), "seconds": round(time.perf_counter() - started, 3)}
    finally:
        await producer.stop()


async def stage_engine_backlog(harness: Harness, records: list[tuple[bytes, bytes]], *, phase: Phase,
                               timeout_s: float) -> dict:
    engine = harness.processes["stage-engine"]
    engine.stop()
    produced = await produce_backlog(harness, records)
    target = len(records)
    t_start = time.perf_counter()
    engine.start()
    samples: list[tuple[float, float]] = []
    first = done = None
    text = ""
    async with httpx.AsyncClient(timeout=5) as client:
        while time.perf_counter() - t_start < timeout_s:
            try:
                text = await metrics_text(client, engine.url)
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
                continue
            now = time.perf_counter()
            count = metric_sum(text, CONSUMED, consumer="stage-engine")
            if first is None:
                first = (now, count)
                phase("start")
            samples.append((round(now - t_start, 3), count))
            if count >= target:
                done = now
                phase("end")
                break
            await asyncio.sleep(0.1)
    result = {"backlog": target, "produce": produced,
              "outcomes": metric_by_label(text, CONSUMED, "outcome", consumer="stage-engine"),
              "dlq_records": metric_sum(text, "lifecycle_dlq_records_total", consumer="stage-engine"),
              "first_metrics_after_s": round(first[0] - t_start, 3) if first else None,
              "consumed_at_first_metrics": first[1] if first else None,
              "samples_t_s_count": samples}
    if done is None or first is None:
        phase("end")
        return result | {"rate": None, "error": f"stage engine did not reach {target} within {timeout_s}s"}
    measured = target - first[1]
    seconds = done - first[0]
    return result | {"rate": round(measured / seconds, 1), "measured_events": int(measured),
                     "seconds": round(seconds, 3), "wall_from_process_start_s": round(done - t_start, 3),
                     "rate_incl_startup": round(target / (done - t_start), 1)}


async def wait_quiet(harness: Harness, *, timeout_s: float, quiet_s: float = 1.0) -> dict:
    """Until every consumer's counter stays still for `quiet_s` and no outbox has a backlog."""
    names = ("stage-engine", "messaging", "loyalty")
    started, last, still_since = time.perf_counter(), None, None
    async with httpx.AsyncClient(timeout=5) as client:
        while time.perf_counter() - started < timeout_s:
            texts = {name: await metrics_text(client, harness.url(name)) for name in names}
            counts = tuple(metric_sum(texts[n], CONSUMED, consumer=n) for n in names)
            backlog = sum(metric_sum(texts[n], "lifecycle_outbox_backlog") for n in names)
            now = time.perf_counter()
            if counts != last or backlog:
                last, still_since = counts, now
            elif now - still_since >= quiet_s:
                return {"seconds": round(still_since - started, 2), "consumed": dict(zip(names, counts))}
            await asyncio.sleep(0.25)
    return {"seconds": None, "error": f"not quiet after {timeout_s}s", "consumed": dict(zip(names, last or ()))}


async def _poll(client: httpx.AsyncClient, url: str, ready: Callable[[dict], bool], *, since: float,
                poll_s: float, timeout_s: float, polls: list[int]) -> float | None:
    while time.perf_counter() - since < timeout_s:
        polls[0] += 1
        try:
            response = await client.get(url)
            if response.status_code == 200 and ready(response.json()):
                return (time.perf_counter() - since) * 1000
        except httpx.HTTPError:
            pass
        await asyncio.sleep(poll_s)
    return None


async def latency(harness: Harness, *, rate: float, duration_s: float, poll_s: float, timeout_s: float,
                  phase: Phase) -> dict:
    count = int(rate * duration_s)
    run = uuid.uuid4().hex[:6]
    rng = random.Random(7)
    bodies = [order_body(f"lat-{run}-{i:05d}", revenue=round(rng.uniform(10, 200), 2), rng=rng)
              for i in range(count)]
    headers = {"authorization": basic_auth(harness.write_key), "content-type": "application/json"}
    ingest, stage, loyalty = harness.url("ingest"), harness.url("stage-engine"), harness.url("loyalty")
    ack, to_stage, to_loyalty, lag, errors, polls = [], [], [], [], [], [0]
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        t0 = time.perf_counter() + 0.5

        async def customer(i: int) -> None:
            user = f"lat-{run}-{i:05d}"
            scheduled = t0 + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            sent = time.perf_counter()
            lag.append((sent - scheduled) * 1000)
            try:
                response = await client.post(ingest + "/v1/track", content=bodies[i], headers=headers)
            except httpx.HTTPError as error:
                errors.append(type(error).__name__)
                return
            if response.status_code != 200:
                errors.append(f"http_{response.status_code}")
                return
            ack.append((time.perf_counter() - sent) * 1000)
            staged, earned = await asyncio.gather(
                _poll(client, f"{stage}/v1/customers/{user}", lambda p: p.get("stage") == "purchase",
                      since=sent, poll_s=poll_s, timeout_s=timeout_s, polls=polls),
                _poll(client, f"{loyalty}/v1/customers/{user}/balance", lambda b: b.get("entries", 0) >= 1,
                      since=sent, poll_s=poll_s, timeout_s=timeout_s, polls=polls))
            (to_stage if staged is not None else errors).append(staged if staged is not None else "stage_timeout")
            (to_loyalty if earned is not None else errors).append(earned if earned is not None else "loyalty_timeout")

        phase("start")
        started = time.perf_counter()
        await asyncio.gather(*[customer(i) for i in range(count)])
        elapsed = time.perf_counter() - started
        phase("end")

    return {"customers": count, "offered_rate_per_s": rate, "duration_s": duration_s, "poll_interval_ms": poll_s * 1000,
            "post_ack_ms": percentiles(ack), "to_stage_purchase_ms": percentiles(to_stage),
            "to_loyalty_entry_ms": percentiles(to_loyalty), "send_lag_behind_schedule_ms": percentiles(lag),
            "errors": {e: errors.count(e) for e in set(errors)}, "polls": polls[0],
            "polls_per_s": round(polls[0] / elapsed, 1), "seconds": round(elapsed, 2),
            "raw_ms": {"post_ack": [round(v, 1) for v in ack], "to_stage_purchase": [round(v, 1) for v in to_stage],
                       "to_loyalty_entry": [round(v, 1) for v in to_loyalty]}}
