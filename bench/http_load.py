"""Closed-loop HTTP load on ingest: N asyncio tasks sharing one connection pool (the raw keep-alive
client of rawhttp.py, or one httpx.AsyncClient), each posting pre-built bodies back to back for a
warm-up and then a fixed measured window.

Only responses that complete inside the window count; only 200s count as ingested events (for
/v1/batch, the `accepted` number in the body). Everything else is tallied as an error by status
or exception name. Per-request latency is kept for the measured window.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Callable

import httpx
from harness import metric_sum, metrics_text
from rawhttp import TRANSPORT_ERRORS, make_pool

Phase = Callable[[str], None]


def basic_auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def percentiles(values: list[float], points=(50, 90, 99)) -> dict[str, float | None]:
    if not values:
        return {f"p{p}": None for p in points} | {"max": None, "mean": None}
    ordered = sorted(values)
    out = {f"p{p}": ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] for p in points}
    return {key: round(value, 2) for key, value in out.items()} | {
        "max": round(ordered[-1], 2), "mean": round(sum(ordered) / len(ordered), 2)}


async def ingest_load(base_url: str, write_key: str, *, path: str, bodies: list[bytes], batch: bool,
                      concurrency: int, warmup_s: float, duration_s: float, phase: Phase, client_kind: str,
                      server_counter: bool = True, connect_stagger_s: float = 0.02) -> dict:
    """`server_counter`: read ingest's accepted-events counter before and after (off for the null
    endpoint, which has no /metrics, and for several workers, whose counters are per process).
    The connections are opened before the warm-up, `connect_stagger_s` apart (see Pool.open)."""
    headers = {"authorization": basic_auth(write_key), "content-type": "application/json"}
    pool = make_pool(client_kind, base_url, size=concurrency, headers=headers)
    state = {"measuring": False, "stop": False, "t_end": float("inf")}
    events, requests, latencies = [0], [0], []
    errors: Counter[str] = Counter()

    async with httpx.AsyncClient(timeout=10) as client:
        async def accepted() -> float | None:
            if not server_counter:
                return None
            return metric_sum(await metrics_text(client, base_url), "lifecycle_ingest_events_total",
                              outcome="accepted")

        accepted_before = await accepted()

        async def worker(index: int) -> None:
            n = index
            while not state["stop"]:
                body = bodies[n % len(bodies)]
                n += concurrency
                started = time.perf_counter()
                try:
                    response = await pool.post(path, body)
                except TRANSPORT_ERRORS as error:
                    if state["measuring"]:
                        errors[type(error).__name__] += 1
                    continue
                finished = time.perf_counter()
                if not state["measuring"] or finished > state["t_end"]:
                    continue
                if response.status_code == 200:
                    requests[0] += 1
                    events[0] += response.json()["accepted"] if batch else 1
                    latencies.append((finished - started) * 1000)
                else:
                    errors[f"http_{response.status_code}"] += 1

        await pool.open(concurrency, stagger_s=connect_stagger_s)
        workers = [asyncio.create_task(worker(i)) for i in range(concurrency)]
        await asyncio.sleep(warmup_s)
        phase("start")
        state["measuring"], t0 = True, time.perf_counter()
        state["t_end"] = t0 + duration_s
        await asyncio.sleep(duration_s)
        elapsed = time.perf_counter() - t0
        phase("end")
        state["stop"] = True
        await asyncio.gather(*workers)
        await pool.aclose()
        accepted_after = await accepted()

    return {"events": events[0], "requests_ok": requests[0], "seconds": round(elapsed, 3),
            "rate": round(events[0] / elapsed, 1), "requests_per_s": round(requests[0] / elapsed, 1),
            "errors": dict(errors), "latency_ms": percentiles(latencies),
            "server_accepted_total_delta": None if accepted_after is None else int(accepted_after - accepted_before)}
