"""Lifecycle benchmark: raw baselines and product figures, measured in ONE run on ONE stack.

    .venv/bin/python bench/run.py [--quick] [--profile] [--out bench/report.json] [--client raw|httpx] [--keep]

Starts embedded Tansu + durable PostgreSQL and the four services itself (plus, for the ingest
figures, ingest processes publishing to topics nothing consumes, one with 2 workers, and a
no-Kafka FastAPI endpoint), then measures, in order:
  1. aiokafka keyed producer msgs/s (baseline; and again with ingest's partitioner)   2. asyncpg upsert rows/s
  3. no-Kafka FastAPI endpoint (bench/null_app.py) requests/s, single events (baseline)
  4. ingest /v1/track events/s, single events, 1 worker
  5. ingest /v1/batch events/s, 100-event batches, 1 worker, then 2 workers
  6. ingest POST -> 200 latency, open loop at 70% of 4. (single events) and of 5. (batches, 1 worker)
  7. (--profile) py-spy on the 1-worker ingest during a repeat of 4. and of 5.: bench/profiles/ (and on
     the consumers during a repeat of the knee's first step that fell behind, see 10.)
  8. stage-engine events/s over a pre-loaded backlog
  9. end-to-end latency POST -> stage "purchase" and POST -> loyalty ledger entry (open loop,
     50 customers/s): 1 in 5 customers polled every 10 ms, plus (full run) every customer polled
 10. the pipeline's knee (bench/knee.py): stepped open-loop journeys through ingest; per step the accepted
     rate, consumer lag per group, POST -> first transition / ledger entry / message p50/p99 from the
     services' own timestamps and the cores per process; the highest step with flat lag and p99 <= 1 s,
     then steps at 50% and 80% of it
 11. stage-engine events/s with 1, 2 and 3 instances in one group, beside a raw upsert baseline run
     in the same phase (bench/scale_out.py)
Then, after the stack has stopped, the services' own benches (bench/suites.py: messaging, loyalty, webhooks, reads),
each on its own PostgreSQL beside its own raw baseline. `--only` picks phases (e.g. `--only messaging,loyalty`).
Each product figure is printed with its ratio to its baseline (batches: to the producer; single
events: to the no-Kafka endpoint) and the issue's goal beside it; the JSON report keeps parameters,
raw numbers and the cores each process (the load generator included) used per phase. Measurement
only: nothing asserts timings.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import math
import shutil
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
if importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` on every request; when it is not installed each failed import
    # searches sys.path again. A None entry makes it fail at once (same outcome: "asyncio").
    sys.modules["sniffio"] = None

from baselines import hop_run, producer_run, upsert_prepare, upsert_run  # noqa: E402
from cpu import CpuMeter, PhaseCpu  # noqa: E402
from harness import Harness  # noqa: E402
from http_load import ingest_load  # noqa: E402
from knee import knee  # noqa: E402
from latency import latency  # noqa: E402
from lifecycle_shared.kafka.partitioner import keyed_partitioner  # noqa: E402
from openloop import open_loop  # noqa: E402
from params import FULL, GOALS, QUICK  # noqa: E402
from payloads import backlog_records, batch_bodies, body_stats, producer_values, single_bodies  # noqa: E402
from pipeline import stage_engine_backlog, wait_quiet  # noqa: E402
from pyspy import Recorder, render, summarize  # noqa: E402
from report import add_ratios, code_version, machine, median_of, table, write  # noqa: E402
from scale_out import scale_out  # noqa: E402
from suites import SUITES, run_suite  # noqa: E402

PROFILES = Path(__file__).resolve().parent / "profiles"


CLIENTS = {"raw": "bench/rawhttp.py keep-alive pool (one connection per task)",
           "httpx": "one shared httpx.AsyncClient, limits raised"}


STACK_PHASES = ("producer", "upsert", "http", "stage_engine", "latency", "knee", "scale_out")
PHASES = (*STACK_PHASES, *SUITES)  # the suites run after the stack has stopped, each on its own


async def measure(h: Harness, p: dict, data: dict, report: dict, timings: dict, client: str,
                  *, profile: bool, only: tuple[str, ...] = PHASES) -> None:
    meter = CpuMeter(h.cpu_roles)
    base, product = report["baselines"], report["product"]

    if "producer" in only:
        await producer_phase(h, p, data, base, timings, meter)
    if "upsert" in only:
        await upsert_phase(h, p, base, timings, meter)
    if "http" in only:
        await http_phases(h, p, data, report, timings, client, meter, profile=profile)
    if "stage_engine" in only:
        await stage_engine_phase(h, p, data, product, timings, meter)
    if "latency" in only:
        await latency_phases(h, p, product, timings, client, meter)
    if "knee" in only:
        mark = time.perf_counter()
        product["pipeline_knee"] = await knee(h, p, data, report, meter, client, profile=profile,
                                              log=lambda line: print(line, file=sys.stderr, flush=True))
        timings["knee"] = time.perf_counter() - mark
    if "scale_out" in only:  # last: it leaves extra stage-engine instances running
        mark = time.perf_counter()
        product["stage_engine_scale_out"] = await scale_out(h, p, phase_for=lambda: PhaseCpu(meter))
        timings["scale_out"] = time.perf_counter() - mark


async def producer_phase(h: Harness, p: dict, data: dict, base: dict, timings: dict, meter: CpuMeter) -> None:
    mark = time.perf_counter()
    # The default partitioner (the baseline the goals name) and the product's own (lifecycle_shared.kafka.
    # partitioner: the same partitions, the key's hash remembered), alternating so drift hits both alike.
    runs: dict[str, list[dict]] = {"producer": [], "producer_hashed": []}
    for n in range(p["producer_runs"]):
        for name, partitioner in (("producer", None), ("producer_hashed", keyed_partitioner)):
            cpu = PhaseCpu(meter)
            run = await producer_run(h.kafka(), f"{h.config.topic_prefix}bench.{name}.{n}", data["pairs"],
                                     p["producer_messages"], phase=cpu, partitioner=partitioner)
            runs[name].append(run | {"cpu_cores": cpu.cores})
    for name, described in (("producer", "aiokafka DefaultPartitioner"),
                            ("producer_hashed", "lifecycle_shared.kafka.partitioner.keyed_partitioner")):
        base[name] = {"value": median_of(runs[name]), "unit": "msgs/s", "runs": runs[name],
                      "cpu_cores": runs[name][-1]["cpu_cores"],
                      "params": {k: p[k] for k in ("producer_messages", "producer_keys", "value_bytes")} | {
                          "acks": "all", "linger_ms": 5, "max_batch_size": 65536, "partitions": 6,
                          "enable_idempotence": h.infra.kafka_idempotence, "pattern": "send() all, gather futures",
                          "partitioner": described}}
    timings["producer"] = time.perf_counter() - mark


async def upsert_phase(h: Harness, p: dict, base: dict, timings: dict, meter: CpuMeter) -> None:
    mark = time.perf_counter()
    database = h.config.database_prefix + "bench_scratch"
    batches = await upsert_prepare(h.infra.postgres_url, database, p["upsert_keys"], p["upsert_batch"])
    runs = []
    for _ in range(p["upsert_runs"]):
        cpu = PhaseCpu(meter)
        run = await upsert_run(h.infra.postgres_url, database, batches, p["upsert_rows"], phase=cpu)
        runs.append(run | {"cpu_cores": cpu.cores})
    base["asyncpg_upsert"] = {"value": median_of(runs), "unit": "rows/s", "runs": runs,
                              "cpu_cores": runs[-1]["cpu_cores"],
                              "params": {"rows_per_run": p["upsert_rows"], "rows_per_transaction": p["upsert_batch"],
                                         "distinct_ids": p["upsert_keys"], "connections": 1, "columns": 6,
                                         "statement": "INSERT ... SELECT * FROM unnest(...) ON CONFLICT (id) DO UPDATE",
                                         "note": "every id inserted once before timing: timed rows are updates"}}
    timings["upsert"] = time.perf_counter() - mark


async def stage_engine_phase(h: Harness, p: dict, data: dict, product: dict, timings: dict,
                             meter: CpuMeter) -> None:
    mark = time.perf_counter()
    cpu = PhaseCpu(meter)
    result = await stage_engine_backlog(h, data["backlog"], phase=cpu, timeout_s=p["backlog_timeout_s"])
    settle = await wait_quiet(h, timeout_s=90)
    product["stage_engine"] = {"value": result.get("rate"), "unit": "events/s", **result, "cpu_cores": cpu.cores,
                               "params": {"backlog_events": p["backlog_events"], "customers": p["backlog_customers"],
                                          "event_size": body_stats([v for _, v in data["backlog"]]),
                                          "mix": "page 40%, Product Viewed 35%, Product Added 10%, "
                                                 "Checkout Started 5%, Order Completed 10%",
                                          "others_running": "ingest, loyalty, messaging (loyalty also consumes "
                                                            "the touchpoints and the transitions emitted)"},
                               "settle_after": settle}
    timings["stage_engine"] = time.perf_counter() - mark


async def latency_phases(h: Harness, p: dict, product: dict, timings: dict, client: str, meter: CpuMeter) -> None:
    if p["latency_reads"] == "api":  # the reads served as the chart deploys them, beside the consumers
        h.start_read_apis()
    for name, probe_every, duration in (("latency", p["probe_every"], p["latency_duration_s"]),
                                        ("latency_all_polled", 1, p["all_polled_duration_s"])):
        if not duration:
            continue
        mark = time.perf_counter()
        quiet = await wait_quiet(h, timeout_s=60)
        cpu = PhaseCpu(meter)
        result = await latency(h, rate=p["latency_rate"], duration_s=duration, poll_s=p["poll_s"],
                               timeout_s=p["latency_timeout_s"], phase=cpu, client_kind=client,
                               probe_every=probe_every)
        hop = await hop_run(h.kafka(), f"{h.config.topic_prefix}bench.{name}.hop", rate=p["latency_rate"],
                            duration_s=min(duration, 10.0))
        product[name] = {"unit": "ms", **result, "cpu_cores": cpu.cores, "quiet_before": quiet,
                         "baseline_kafka_hop_ms": hop}
        timings[name] = time.perf_counter() - mark


async def http_phases(h: Harness, p: dict, data: dict, report: dict, timings: dict, client: str,
                      meter: CpuMeter, *, profile: bool) -> None:
    """The no-Kafka endpoint baseline, ingest throughput (1 and 2 workers), open-loop latency at a
    fraction of the measured capacity, and (--profile) py-spy during repeats of the 1-worker phases."""
    base, product = report["baselines"], report["product"]

    async def closed_loop(name: str, target: str, kind: str, *, on_start=None, duration: float | None = None) -> dict:
        batch = kind == "batch"
        path, bodies = ("/v1/batch", data["batch"]) if batch else ("/v1/track", data["single"])
        conc = p["batch_concurrency"] if batch else p["single_concurrency"]
        duration = duration or (p["batch_duration_s"] if batch else p["single_duration_s"])
        mark = time.perf_counter()
        cpu = PhaseCpu(meter, on_start)
        # Counters are per process: with several workers (or none, the null app) they say nothing.
        counter = target in ("ingest-sink", "ingest")
        result = await ingest_load(h.url(target), h.write_key, path=path, bodies=bodies, batch=batch,
                                   concurrency=conc, warmup_s=p["warmup_s"], duration_s=duration, phase=cpu,
                                   client_kind=client, server_counter=counter,
                                   connect_stagger_s=p["connect_stagger_s"])
        timings[name] = time.perf_counter() - mark
        return {"value": result["rate"], "unit": "events/s", **result, "cpu_cores": cpu.cores,
                "params": {"target": target, "path": path, "concurrency": conc, "warmup_s": p["warmup_s"],
                           "duration_s": duration, "client": CLIENTS[client], "bodies": body_stats(bodies),
                           "connections_opened": f"{conc}, one at a time {p['connect_stagger_s']} s apart",
                           "events_per_request": p["batch_size"] if batch else 1}}

    topic = h.sink_prefix + "touchpoints.v1 (nothing consumes it)"
    base["null_endpoint"] = await closed_loop("null_endpoint", "null-app", "single")
    base["null_endpoint"]["params"] |= {
        "server": "bench/null_app.py: FastAPI POST /v1/track, reads + json-parses the body, answers "
                  '{"success": true}; served by lifecycle_shared.cli.serve (uvicorn, no access log, same GC '
                  "tuning), 1 process", "same_as": "ingest_single: load generator, concurrency, bodies, headers"}
    base["null_endpoint"]["unit"] = "requests/s"
    for name, target, kind, workers in (("ingest_single", "ingest-sink", "single", 1),
                                        ("ingest_batch", "ingest-sink", "batch", 1),
                                        ("ingest_batch_2w", "ingest-sink-2w", "batch", 2)):
        spread: dict = {}
        if workers > 1:
            pids = h.worker_pids(target)
            h.extra_roles.update({f"{target}[w{i}]": [pid] for i, pid in enumerate(pids)})
            on_start = lambda: spread.update(h.connections_per_worker(target))  # noqa: E731, B023
        else:
            on_start = None
        product[name] = await closed_loop(name, target, kind, on_start=on_start)
        product[name]["params"] |= {"workers": workers, "topic": topic}
        if workers > 1:
            product[name]["connections_per_worker"] = {f"w{i}": spread.get(pid) for i, pid in enumerate(pids)}
            for pid_role in [r for r in h.extra_roles if r.startswith(target)]:
                del h.extra_roles[pid_role]

    fraction = p["capacity_fraction"]
    for name, capacity, kind in (("ack_latency_single", "ingest_single", "single"),
                                 ("ack_latency_batch", "ingest_batch", "batch")):
        events_per_s = product[capacity]["value"]
        if not events_per_s:
            continue
        batch = kind == "batch"
        rate = fraction * events_per_s / (p["batch_size"] if batch else 1)
        mark = time.perf_counter()
        cpu = PhaseCpu(meter)
        result = await open_loop(h.url("ingest-sink"), h.write_key, path="/v1/batch" if batch else "/v1/track",
                                 bodies=data["batch"] if batch else data["single"], rate=rate,
                                 warmup_s=p["open_loop_warmup_s"], duration_s=p["open_loop_duration_s"],
                                 connections=p["open_loop_batch_connections" if batch else
                                               "open_loop_single_connections"], phase=cpu, client_kind=client)
        product[name] = {"unit": "ms", **result, "cpu_cores": cpu.cores,
                         "params": {"target": "ingest-sink (1 worker)", "capacity_from": capacity,
                                    "capacity_events_per_s": events_per_s, "fraction": fraction,
                                    "offered_events_per_s": round(fraction * events_per_s, 1),
                                    "events_per_request": p["batch_size"] if batch else 1,
                                    "warmup_s": p["open_loop_warmup_s"], "duration_s": p["open_loop_duration_s"],
                                    "mode": "open loop; latency from each request's scheduled send time"}}
        timings[name] = time.perf_counter() - mark

    if profile:
        report["profiles"] = {}
        for name, kind in (("single", "single"), ("batch", "batch")):
            report["profiles"][name] = await profile_phase(h, p, name, kind, closed_loop)


async def profile_phase(h: Harness, p: dict, name: str, kind: str, closed_loop) -> dict:
    """py-spy on the 1-worker ingest (ingest-sink) during a repeat of its throughput phase (the
    measured figures above ran without the profiler)."""
    pid = h.processes["ingest-sink"].process.pid
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = PROFILES / f"{stamp}-ingest-{name}.raw"
    duration = p["profile_duration_s"]
    recorder = Recorder(pid, raw, rate=p["profile_rate_hz"], duration_s=duration)

    def on_start() -> None:
        spy = recorder.start()
        if spy:
            h.extra_roles["py-spy"] = [spy]

    run = await closed_loop(f"profile_{name}", "ingest-sink", kind, on_start=on_start, duration=duration)
    h.extra_roles.pop("py-spy", None)
    outcome = recorder.finish()
    entry = {"target": "ingest-sink (1 worker)", "pid": pid, "rate_hz": p["profile_rate_hz"],
             "duration_s": duration, "raw": str(raw), **outcome,
             "rate_under_profiler": run["value"], "cpu_cores": run["cpu_cores"]}
    if "error" in entry:
        print(f"py-spy ({name}): {entry['error']}", file=sys.stderr)
        return entry
    summary = summarize(raw)
    text = render(f"ingest {name} ({kind}, {run['value']:,.0f} events/s under the profiler)", summary,
                  expected_samples=int(p["profile_rate_hz"] * math.ceil(duration)))
    summary_path = raw.with_suffix(".txt")
    summary_path.write_text(text + "\n")
    print("\n" + text)
    return entry | {"summary": summary, "summary_text": str(summary_path)}


def build_payloads(p: dict) -> dict:
    return {"pairs": producer_values(p["producer_keys"], size=p["value_bytes"]),
            "single": single_bodies(20_000, customers=p["http_customers"]),
            "batch": batch_bodies(200, size=p["batch_size"], customers=p["http_customers"]),
            "backlog": backlog_records(p["backlog_events"], customers=p["backlog_customers"])}


def run_stack(report: dict, params: dict, data: dict, timings: dict, args: argparse.Namespace,
              only: tuple[str, ...]) -> bool:
    """Start the stack, measure its phases into `report`, stop it; True if it failed."""
    harness, failed = Harness(), True
    try:
        mark = time.perf_counter()
        harness.start()
        timings["start_stack"] = time.perf_counter() - mark
        report["stack"] = harness.describe()
        report["parameters"] = params | {"ingest_env": report["stack"]["ingest_env"],
                                         "key": report["stack"]["key_kind"]}
        report["machine"] = machine(report["stack"])
        report["code"] = code_version()
        asyncio.run(measure(harness, params, data, report, timings, args.client, profile=args.profile,
                              only=only))
        failed = False
    except BaseException:  # noqa: BLE001 - report what was measured, then stop everything
        traceback.print_exc()
        report["error"] = traceback.format_exc()
    finally:
        mark = time.perf_counter()
        harness.stop()
        timings["stop_stack"] = time.perf_counter() - mark
        if harness.infra and not (args.keep or failed):
            shutil.rmtree(harness.infra.work_dir, ignore_errors=True)
        elif harness.infra:
            print(f"work folder kept: {harness.infra.work_dir}", file=sys.stderr)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter run (about a minute)")
    parser.add_argument("--out", type=Path, default=Path("bench/report.json"))
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                        help="HTTP client of the load generator (default raw: see bench/rawhttp.py)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, data) afterwards")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the 1-worker ingest during repeats of the single and batch phases, and the "
                             "consumers during a repeat of the knee phase's first step that fell behind "
                             "(bench/profiles/)")
    parser.add_argument("--only", default=",".join(PHASES),
                        help=f"comma-separated phases to run (default all: {','.join(PHASES)})")
    args = parser.parse_args()
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    if unknown := set(only) - set(PHASES):
        parser.error(f"unknown phases: {sorted(unknown)}")
    params = QUICK if args.quick else FULL
    started = time.perf_counter()
    data = build_payloads(params)
    # The load generator's own GC: everything built so far is long-lived; collect rarely.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    timings = {"build_payloads": time.perf_counter() - started}
    report = {"mode": "quick" if args.quick else "full", "parameters": params, "goals": GOALS,
              "baselines": {}, "product": {},
              "phases_s": timings, "load_generator": {"gc": "freeze + set_threshold(50000, 20, 100)",
                                                     "process": "this one (bench/run.py)",
                                                     "http_client": CLIENTS[args.client]}}
    failed = False
    if set(only) & set(STACK_PHASES):
        failed = run_stack(report, params, data, timings, args, only)
    for name in (name for name in SUITES if name in only):
        mark = time.perf_counter()
        print(f"bench/{name}.py ...", file=sys.stderr, flush=True)
        report.setdefault("services", {})[name] = found = run_suite(name, quick=args.quick)
        timings[name] = time.perf_counter() - mark
        failed = failed or "error" in found
    report.setdefault("machine", machine(None))
    timings["total"] = time.perf_counter() - started
    for key in timings:
        timings[key] = round(timings[key], 2)
    add_ratios(report)
    write(report, args.out)
    if "machine" in report:
        print(table(report))
    print(f"\nreport: {args.out}  (total {timings['total']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
