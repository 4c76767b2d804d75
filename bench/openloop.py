"""Open-loop HTTP load at a fixed offered rate: POST -> 200 latency at a fraction of capacity.

Request i is due at t0 + i/rate and is sent then, whatever the earlier ones are doing (a scheduler
starts a task for every request that is due; none waits for a response). Latency runs from the
request's *scheduled* time to its response, so time spent queued anywhere - in the load
generator (waiting for a free connection or for the event loop), in the kernel, in the server -
counts (no coordinated omission). `send_lag_ms` (scheduled -> the task actually starting) shows
how far the generator itself fell behind: when it is not small next to the latency, the client
was the bottleneck.

A warm-up at the same rate (not recorded) opens the connections first. `paths` (reads): request i is
`GET paths[i % len(paths)]` instead of a POST, sent with `headers` (default: the write key's Basic auth).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

from http_load import basic_auth, percentiles
from rawhttp import TRANSPORT_ERRORS, make_pool

Phase = Callable[[str], None]


async def open_loop(base_url: str, write_key: str, *, path: str, bodies: list[bytes], rate: float,
                    warmup_s: float, duration_s: float, connections: int, phase: Phase,
                    client_kind: str, paths: list[str] | None = None,
                    headers: dict[str, str] | None = None) -> dict:
    headers = headers or {"authorization": basic_auth(write_key), "content-type": "application/json"}
    pool = make_pool(client_kind, base_url, size=connections, headers=headers)
    warm, count = int(rate * warmup_s), max(1, int(rate * duration_s))
    total = warm + count
    latencies: list[float] = []
    lag: list[float] = []
    errors: Counter[str] = Counter()
    ok = [0]
    in_flight: set[asyncio.Task] = set()
    peak = [0]

    async def one(i: int, scheduled: float, measured: bool) -> None:
        started = time.perf_counter()
        try:
            response = await (pool.get(paths[i % len(paths)]) if paths else pool.post(path, bodies[i % len(bodies)]))
        except TRANSPORT_ERRORS as error:
            if measured:
                errors[type(error).__name__] += 1
            return
        done = time.perf_counter()
        if not measured:
            return
        lag.append((started - scheduled) * 1000)
        if response.status_code == 200:
            ok[0] += 1
            latencies.append((done - scheduled) * 1000)
        else:
            errors[f"http_{response.status_code}"] += 1

    t0 = time.perf_counter() + 0.05
    measured_from = t0 + warm / rate
    i = 0
    try:
        while i < total:
            now = time.perf_counter()
            due = t0 + i / rate
            if due > now:
                await asyncio.sleep(due - now)
                continue
            while i < total and t0 + i / rate <= now:
                if i == warm:
                    phase("start")
                task = asyncio.create_task(one(i, t0 + i / rate, i >= warm))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                i += 1
            peak[0] = max(peak[0], len(in_flight))
        while in_flight:
            await asyncio.gather(*list(in_flight))
        finished = time.perf_counter()
        phase("end")
    finally:
        await pool.aclose()
    window = finished - measured_from
    return {"offered_rate_per_s": round(rate, 1), "requests": count, "ok": ok[0], "errors": dict(errors),
            "seconds_to_last_response": round(window, 3), "achieved_rate_per_s": round(ok[0] / window, 1),
            "post_to_200_ms": percentiles(latencies, points=(50, 90, 99)),
            "send_lag_ms": percentiles(lag, points=(50, 99)), "peak_requests_in_flight": peak[0],
            "connections_max": connections, "client": client_kind}
