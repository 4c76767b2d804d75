"""Bench phase `knee`: the whole pipeline's sustainable rate and reaction time (issue 20, "The whole pipeline").

Stepped open-loop load through ingest (POST /v1/batch, bench/journeys.py: anonymous visitors browsing,
signing up and merging, ordering, refunding), each rate held for `knee_step_s`. Per step:
- accepted: events in 200 answers per second, from the first request's due time to the last answer;
- consumer lag per group (stage-engine, messaging, loyalty), from the broker (bench/group_lag.py: end
  offset minus committed), sampled every `knee_lag_every_s`; flat when the end of the step is at most one
  second of offered events above its start (Tansu under-reports end offsets by about a batch per
  partition, so small figures are noise);
- after the step the pipeline drains (every group's lag 0, then every consumer's counter still and no
  outbox backlog), and the consumers' own histograms (record age at poll, batch apply) over the step are
  kept; then bench/knee_effects.py reads from the three databases how long after its POST each touchpoint's first
  transition, ledger entry and message appeared: p50/p99 per service (nothing polls during the step);
- the cores each process used while the load was offered (bench/cpu.py; `not-ours`: other load on the box).

A step *holds* when accepted >= 95% of offered, every group's lag stays flat and the pipeline drained in
time; it *meets the goal* when it holds and every p99 <= 1 s. Stepping stops at the first step that does
not hold; when none met the goal, the rate is halved below the first step (down to `knee_lowest_rate`)
until one does. The knee is the highest step that met the goal; then two more steps at 50% and 80% of it
give the latency table. With --profile, the first step that did not hold runs again with py-spy on each
consumer (bench/profiles/; its figures kept apart). Last, one step at the issue's goal rate
(`knee_goal_rate`, 5,000 events/s) for the stage engine's figure whatever the knee: it waits only for the
stage engine to catch up, and may leave messaging and loyalty behind for the next phase. The knee is
reported as a ratio to the raw keyed producer (aiokafka) measured in the same run (the producer phase's
median, else one producer run made here).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from baselines import producer_run
from cpu import CpuMeter
from group_lag import GroupLag, totals
from harness import Harness
from http_load import basic_auth, percentiles
from journeys import JOURNEYS, Request, requests
from knee_effects import first_effects, read_effects, summary
from knee_report import GROUPS, step_line
from latency import histogram_delta, scrape_histograms
from pipeline import wait_quiet
from pyspy import Recorder, render, summarize
from rawhttp import TRANSPORT_ERRORS, make_pool

P99_LIMIT_MS = 1000.0
PROFILES = Path(__file__).resolve().parent / "profiles"
GOAL = "knee > 10,000 events/s; p99 POST -> stage applied <= 1 s at 5,000 events/s"


async def _lag(monitor: GroupLag) -> dict[str, int]:
    return totals(await monitor.measure())


async def _offer(h: Harness, plan: list[Request], *, connections: int, client_kind: str,
                 monitor: GroupLag, lag_every_s: float, meter: CpuMeter) -> dict:
    """Send `plan` open loop; POST wall times per messageId, answers, lag samples and cores used."""
    headers = {"authorization": basic_auth(h.write_key), "content-type": "application/json"}
    pool = make_pool(client_kind, h.url("ingest"), size=connections, headers=headers)
    posted: dict[str, float] = {}
    answers: dict[str, int] = {}
    accepted, send_lag, ack_ms = [0], [], []
    in_flight: set[asyncio.Task] = set()
    samples: list[tuple[float, dict[str, int]]] = []

    async def one(request: Request, due: float, due_wall: float) -> None:
        send_lag.append((time.perf_counter() - due) * 1000)
        try:
            response = await pool.post("/v1/batch", request.body)
        except TRANSPORT_ERRORS as error:
            answers[type(error).__name__] = answers.get(type(error).__name__, 0) + 1
            return
        answers[str(response.status_code)] = answers.get(str(response.status_code), 0) + 1
        if response.status_code == 200:
            ack_ms.append((time.perf_counter() - due) * 1000)
            accepted[0] += len(request.message_ids)
            for message_id in request.message_ids:
                posted[message_id] = due_wall  # the scheduled time: queueing in the generator counts

    async def sample_lag(t0: float) -> None:
        while True:
            try:
                samples.append((round(time.perf_counter() - t0, 2), await _lag(monitor)))
            except Exception as error:  # noqa: BLE001 - a sample missed; the start and end ones count
                samples.append((round(time.perf_counter() - t0, 2), {"error": repr(error)}))
            await asyncio.sleep(lag_every_s)

    await pool.open(min(connections, 8), stagger_s=0.0)
    lag_start = await _lag(monitor)
    t0, wall0 = time.perf_counter() + 0.05, time.time() + 0.05
    cpu_start = meter.snapshot()
    sampler = asyncio.create_task(sample_lag(t0))
    try:
        for request in plan:
            due = t0 + request.due_s
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(one(request, due, wall0 + request.due_s))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        while in_flight:
            await asyncio.gather(*list(in_flight))
        window = time.perf_counter() - t0
        cores = CpuMeter.cores(cpu_start, meter.snapshot())
    finally:
        sampler.cancel()
        await pool.aclose()
    lag_end = await monitor.measure()
    return {"posted": posted, "wall0": wall0, "window_s": round(window, 2), "accepted": accepted[0],
            "answers": answers, "send_lag_ms": percentiles(send_lag, points=(50, 99)),
            "post_to_200_ms": percentiles(ack_ms, points=(50, 99)), "lag_start": lag_start, "lag_end": totals(lag_end),
            "lag_end_per_topic": lag_end,
            "lag_samples": samples, "cpu_cores": cores}


async def step(h: Harness, p: dict, rate: float, *, monitor: GroupLag, meter: CpuMeter, client_kind: str,
               profile: bool = False, drain_only: str | None = None) -> dict:
    run = uuid.uuid4().hex[:6]
    plan, mix = requests(rate, p["knee_step_s"], flush_s=p["knee_flush_s"], gap_s=p["knee_gap_s"], run=run)
    quiet_before = await drain(h, monitor, timeout_s=p["knee_drain_s"])
    histograms = await consumer_histograms(h)
    spies = _start_profilers(h, p, rate) if profile else {}
    sent = await _offer(h, plan, connections=p["knee_connections"], client_kind=client_kind,
                        monitor=monitor, lag_every_s=p["knee_lag_every_s"], meter=meter)
    profiles = _finish_profilers(h, p, spies, rate)
    drained = await drain(h, monitor, timeout_s=p["knee_drain_s"], only=drain_only)
    consumer_timings = {name: histogram_delta(histograms[name], found)
                        for name, found in (await consumer_histograms(h)).items()}
    since = datetime.fromtimestamp(sent["wall0"] - 1.0, UTC)
    transitions, caused = await read_effects(h, since)
    delays = summary(first_effects(sent.pop("posted"), transitions, caused))
    accepted_rate = sent["accepted"] / sent["window_s"]
    tolerance = max(100.0, rate * 1.0)
    lag_flat = {g: sent["lag_end"][g] - sent["lag_start"][g] <= tolerance for g in GROUPS}
    holds = accepted_rate >= 0.95 * rate and all(lag_flat.values()) and drained.get("seconds") is not None
    p99_ok = all((delays.get(g, {}).get("p99") or float("inf")) <= P99_LIMIT_MS for g in GROUPS)
    return {"offered_events_per_s": rate, "accepted_events_per_s": round(accepted_rate, 1), "run": run, "mix": mix,
            **sent, "lag_tolerance": tolerance, "lag_flat": lag_flat, "drained": drained,
            "quiet_before": quiet_before, "post_to_effect_ms": delays, "consumer_timings": consumer_timings,
            "holds": holds, "meets_goal": holds and p99_ok, **({"profiles": profiles} if profile else {})}


async def idle_cores(h: Harness, p: dict, *, monitor: GroupLag, meter: CpuMeter) -> dict[str, float]:
    """The cores each process uses with nothing offered, once the pipeline is quiet (polling, timers, sweeps):
    what a step's CPU is measured above."""
    await drain(h, monitor, timeout_s=p["knee_drain_s"])
    start = meter.snapshot()
    await asyncio.sleep(p["knee_idle_s"])
    return CpuMeter.cores(start, meter.snapshot())


def _start_profilers(h: Harness, p: dict, rate: float) -> dict[str, Recorder]:
    """py-spy on each consumer while the step's load is offered (bench/pyspy.py)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    spies = {}
    for name in GROUPS:
        recorder = Recorder(h.processes[name].process.pid, PROFILES / f"{stamp}-knee-{rate:g}-{name}.raw",
                            rate=p["profile_rate_hz"], duration_s=p["knee_step_s"])
        if spy := recorder.start():
            h.extra_roles[f"py-spy {name}"] = [spy]
        spies[name] = recorder
    return spies


def _finish_profilers(h: Harness, p: dict, spies: dict[str, Recorder], rate: float) -> dict[str, dict]:
    found = {}
    for name, recorder in spies.items():
        h.extra_roles.pop(f"py-spy {name}", None)
        outcome = recorder.finish()
        if "error" not in outcome:
            summary_path = recorder.out.with_suffix(".txt")
            summary_path.write_text(render(f"{name} at {rate:g} events/s offered (knee phase)", summarize(recorder.out),
                                           expected_samples=int(p["profile_rate_hz"] * p["knee_step_s"])) + "\n")
            outcome["summary_text"] = str(summary_path)
        found[name] = outcome
    return found


async def drain(h: Harness, monitor: GroupLag, *, timeout_s: float, only: str | None = None) -> dict:
    """Until no group is behind (the broker's figure: a consumer may sit still for seconds between batches
    while records wait), then until every counter stays still and no outbox holds a backlog. `only`: until
    that one group is no longer behind (the others may be), then one second for its last commit."""
    started = time.perf_counter()
    while (lag := await _lag(monitor)) and any(v for g, v in lag.items() if only in (None, g)):
        if time.perf_counter() - started > timeout_s:
            return {"seconds": None, "error": f"still behind after {timeout_s} s", "lag": lag}
        await asyncio.sleep(0.5)
    caught_up = time.perf_counter() - started
    if only:
        await asyncio.sleep(1.0)
        return {"seconds": round(caught_up, 2), "lag_zero_after_s": round(caught_up, 2), "only": only, "lag": lag}
    quiet = await wait_quiet(h, timeout_s=max(5.0, timeout_s - caught_up))
    return quiet | {"lag_zero_after_s": round(caught_up, 2),
                    "seconds": None if quiet["seconds"] is None else round(caught_up + quiet["seconds"], 2)}


async def consumer_histograms(h: Harness) -> dict[str, dict]:
    """Each consumer's own batch-time and record-age-at-poll histograms (one /metrics read per service)."""
    found = {}
    for name in GROUPS:
        pool = make_pool("raw", h.url(name), size=1)
        try:
            found[name] = await scrape_histograms(pool)
        finally:
            await pool.aclose()
    return found


async def _producer_baseline(h: Harness, p: dict, data: dict, report: dict) -> tuple[float | None, str]:
    if value := report["baselines"].get("producer", {}).get("value"):
        return value, "the producer phase's median (aiokafka keyed, this run)"
    run = await producer_run(h.kafka(), f"{h.config.topic_prefix}bench.knee.producer", data["pairs"],
                             p["producer_messages"], phase=lambda _: None)
    return run["rate"], f"one aiokafka keyed producer run of {p['producer_messages']:,} messages (this phase)"


async def knee(h: Harness, p: dict, data: dict, report: dict, meter: CpuMeter, client_kind: str,
               log: Callable[[str], None] = print, *, profile: bool = False) -> dict:
    producer, producer_from = await _producer_baseline(h, p, data, report)
    monitor = GroupLag(h.kafka())
    await monitor.start()
    steps, at_fraction, profiled, at_goal, idle = [], {}, None, None, {}
    try:
        idle = await idle_cores(h, p, monitor=monitor, meter=meter)
        log("idle (nothing offered): " + " ".join(f"{role}={value:.2f}" for role, value in idle.items()))
        for rate in p["knee_rates"]:
            found = await step(h, p, rate, monitor=monitor, meter=meter, client_kind=client_kind)
            steps.append(found)
            log(step_line(found))
            if not found["holds"]:
                break
        passing = [s["offered_events_per_s"] for s in steps if s["meets_goal"]]
        rate = min(p["knee_rates"]) / 2
        while not passing and rate >= p["knee_lowest_rate"]:  # below the first step: halve until one meets it
            found = await step(h, p, rate, monitor=monitor, meter=meter, client_kind=client_kind)
            steps.append(found)
            log(step_line(found))
            passing += [rate] if found["meets_goal"] else []
            rate /= 2
        knee_rate = max(passing) if passing else None
        for fraction in (0.5, 0.8) if knee_rate else ():
            found = await step(h, p, fraction * knee_rate, monitor=monitor, meter=meter, client_kind=client_kind)
            at_fraction[f"{fraction:.0%}"] = found
            log(f"at {fraction:.0%} of the knee: " + step_line(found))
        broke = [s["offered_events_per_s"] for s in steps if not s["holds"]]
        if profile and broke:  # where it breaks, again, with py-spy on each consumer (its figures apart)
            profiled = await step(h, p, broke[0], monitor=monitor, meter=meter, client_kind=client_kind, profile=True)
            log("profiled repeat: " + step_line(profiled))
        if p["knee_goal_rate"]:  # the rate, whatever the knee: the stage engine's figure (last: drains slowly)
            at_goal = await step(h, p, p["knee_goal_rate"], monitor=monitor, meter=meter, client_kind=client_kind,
                                 drain_only="stage-engine")
            log("at the goal's rate (only the stage engine drained): " + step_line(at_goal))
            at_goal["drained_after"] = await drain(h, monitor, timeout_s=p["knee_drain_s"])
    finally:
        await monitor.stop()
    held = [s["offered_events_per_s"] for s in steps if s["holds"]]
    return {"knee_events_per_s": knee_rate, "sustained_events_per_s": max(held) if held else None,
            "baseline_producer_msgs_per_s": producer, "baseline_from": producer_from,
            "ratio": {"knee_to_producer": round(knee_rate / producer, 4) if knee_rate and producer else None,
                      "sustained_to_producer": round(max(held) / producer, 4) if held and producer else None},
            "idle_cpu_cores": idle, "steps": steps, "at_fraction_of_knee": at_fraction, "profiled_repeat": profiled,
            "at_goal_rate": at_goal,
            "goal": GOAL,
            "params": {k: p[k] for k in p if k.startswith("knee_")} | {
                "journeys": {name: {"weight": w, "touchpoints": list(s)} for name, w, s in JOURNEYS},
                "target": "ingest (1 worker), consumed by stage-engine, messaging, loyalty",
                "p99_limit_ms": P99_LIMIT_MS}}
