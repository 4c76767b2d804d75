"""The consuming side: stage-engine throughput over a pre-loaded backlog, then waiting for calm.

backlog: stop the stage engine, produce K CloudEvents straight into the touchpoints topic, start
         it again and poll its /metrics every 100 ms until `lifecycle_events_consumed_total
         {consumer="stage-engine"}` (all outcomes) reaches K. The rate is taken from the first
         sample with events consumed (the count by then is subtracted), so interpreter start-up
         and group join are not in it; they are reported apart.
quiet:   before the latency phase, wait until loyalty and messaging have applied what the backlog
         made the stage engine emit, so the latency figures are not measured behind a queue.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
from aiokafka import AIOKafkaProducer
from harness import Harness, metric_by_label, metric_sum, metrics_text
from lifecycle_shared.events import kafka_headers

Phase = Callable[[str], None]
CONSUMED = "lifecycle_events_consumed_total"


async def produce_backlog(harness: Harness, records: list[tuple[bytes, bytes]]) -> dict:
    kafka = harness.kafka()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=5,
                                max_batch_size=64 * 1024, enable_idempotence=kafka.enable_idempotence)
    await producer.start()
    try:
        started = time.perf_counter()
        # The headers ingest sets: content type and the event type (consumers skip by it).
        futures = [await producer.send(kafka.topics.touchpoints, value, key=key,
                                       headers=kafka_headers(json.loads(value)["type"]))
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
    first = done = answered = None
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
            answered = answered or now
            if first is None and count > 0:  # the group has joined and the first batch is applied
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
              "first_metrics_after_s": round(answered - t_start, 3) if answered else None,
              "first_consumed_after_s": round(first[0] - t_start, 3) if first else None,
              "consumed_at_first_sample": first[1] if first else None,
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
                return {"seconds": round(still_since - started, 2), "consumed": dict(zip(names, counts, strict=True))}
            await asyncio.sleep(0.25)
    consumed = dict(zip(names, last or (0, 0, 0), strict=True))
    return {"seconds": None, "error": f"not quiet after {timeout_s}s", "consumed": consumed}
