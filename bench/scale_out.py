"""Scale-out: the stage engine's throughput with 1, 2 and 3 instances in one consumer group, on one broker
and one database, beside the raw upsert baseline measured in the same run (`bench/run.py --only scale_out`).

For each count N: every stage-engine instance stopped, a fresh backlog (new customers, new event ids) produced
straight into the touchpoints topic, N instances started (the harness's own and N-1 on their own ports, same
configuration: same group, same database), and the sum of their `lifecycle_events_consumed_total` polled every
100 ms until it reaches the backlog. The rate counts from the first sample with events consumed (start-up and
group join apart, as the stage_engine phase does). The cores each process used in the timed part say what
limits it: a Python instance is one event loop (at most one core); PostgreSQL and the broker share the rest.
Loyalty and messaging keep running (they consume the transitions emitted), and are waited for between counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from baselines import upsert_prepare, upsert_run
from harness import Harness, metric_sum, metrics_text
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME, ServiceProcess
from payloads import backlog_records
from pipeline import CONSUMED, produce_backlog, wait_quiet

Phase = Callable[[str], None]
COUNTS = (1, 2, 3)


def instances(harness: Harness, count: int) -> list[str]:
    """The harness's stage engine and `count - 1` more (registered in `harness.processes`: measured by the
    CPU meter, stopped with the rest), all stopped; their names."""
    names = ["stage-engine"] + [f"stage-engine-{n}" for n in range(2, count + 1)]
    for name in names[1:]:
        if name not in harness.processes:
            harness.processes[name] = ServiceProcess(BY_NAME["stage-engine"], harness.config,
                                                     harness.logs / f"{name}.log", port=free_port())
    for name in [n for n in harness.processes if n.startswith("stage-engine")]:
        harness.processes[name].stop()
    return names


async def consumed(client: httpx.AsyncClient, harness: Harness, names: list[str]) -> dict[str, float | None]:
    """Events each instance consumed since it started (None while it does not answer)."""
    counts: dict[str, float | None] = {}
    for name in names:
        try:
            counts[name] = metric_sum(await metrics_text(client, harness.url(name)), CONSUMED, consumer="stage-engine")
        except httpx.HTTPError:
            counts[name] = None
    return counts


async def one_count(harness: Harness, count: int, records: list[tuple[bytes, bytes]], *, phase: Phase,
                    timeout_s: float) -> dict:
    names = instances(harness, count)
    produced = await produce_backlog(harness, records)
    started = time.perf_counter()
    for name in names:
        harness.processes[name].start()
    first = done = None
    counts: dict[str, float | None] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        while time.perf_counter() - started < timeout_s:
            counts = await consumed(client, harness, names)
            total = None if None in counts.values() else sum(c or 0.0 for c in counts.values())
            now = time.perf_counter()
            if total is not None and total > 0 and first is None:
                first = (now, total)
                phase("start")
            if total is not None and total >= len(records):
                done = now
                phase("end")
                break
            await asyncio.sleep(0.1)
    result = {"instances": count, "backlog": len(records), "produce": produced, "consumed_per_instance": counts}
    if first is None or done is None:
        phase("end")
        exited = [name for name in names if harness.processes[name].process.poll() is not None]
        return result | {"rate": None, "exited": exited,
                         "error": f"{count} instances did not reach {len(records)} in {timeout_s}s"}
    measured = len(records) - first[1]
    return result | {"rate": round(measured / (done - first[0]), 1), "measured_events": int(measured),
                     "seconds": round(done - first[0], 3), "first_consumed_after_s": round(first[0] - started, 3)}


async def scale_out(harness: Harness, p: dict, *, phase_for: Callable[[], Phase]) -> dict:
    """The raw upsert baseline, then each count; `phase_for()` gives a fresh CPU meter per timed part."""
    database = harness.config.database_prefix + "bench_scale_scratch"
    batches = await upsert_prepare(harness.infra.postgres_url, database, p["upsert_keys"], p["upsert_batch"])
    meter = phase_for()
    baseline = await upsert_run(harness.infra.postgres_url, database, batches, p["upsert_rows"], phase=meter)
    baseline |= {"cpu_cores": meter.cores}  # type: ignore[attr-defined]
    counts = []
    for n, count in enumerate(COUNTS):
        records = backlog_records(p["backlog_events"], customers=p["backlog_customers"], seed=100 + n,
                                  first_customer=(n + 1) * 1_000_000)
        meter = phase_for()
        result = await one_count(harness, count, records, phase=meter, timeout_s=p["backlog_timeout_s"])
        result["cpu_cores"] = meter.cores  # type: ignore[attr-defined]
        result["settle_after"] = await wait_quiet(harness, timeout_s=90)
        counts.append(result)
    one = counts[0].get("rate")
    for result in counts:
        rate = result.get("rate")
        result["ratio"] = {"to_upsert_baseline": round(rate / baseline["rate"], 3) if rate and baseline.get("rate")
                           else None, "to_one_instance": round(rate / one, 3) if rate and one else None}
    return {"upsert_baseline": baseline, "counts": counts,
            "params": {k: p[k] for k in ("backlog_events", "backlog_customers", "upsert_rows")} | {
                "partitions": 6, "note": "loyalty and messaging run beside (they consume what is emitted)"}}
