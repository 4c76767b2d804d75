"""Lifecycle benchmark: raw baselines and product figures, measured in ONE run on ONE stack.

    .venv/bin/python bench/run.py [--quick] [--out bench/report.json] [--client raw|httpx] [--keep]

Starts embedded Tansu + durable PostgreSQL and the four services itself, then measures, in order:
  1. aiokafka producer msgs/s (baseline)      2. asyncpg unnest upsert rows/s (baseline)
  3. ingest /v1/track events/s, single events 4. ingest /v1/batch events/s, 100-event batches
  5. stage-engine events/s over a pre-loaded backlog
  6. end-to-end latency POST -> stage "purchase" and POST -> loyalty ledger entry (open loop,
     50 customers/s): 1 in 5 customers polled every 10 ms, plus (full run) every customer polled
Each product figure is printed with its ratio to its baseline; the JSON report keeps parameters,
raw numbers and the cores each process used per phase. Measurement only: nothing asserts timings.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
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

from baselines import producer_run, upsert_prepare, upsert_run  # noqa: E402
from cpu import CpuMeter  # noqa: E402
from harness import Harness  # noqa: E402
from http_load import ingest_load  # noqa: E402
from latency import latency  # noqa: E402
from payloads import backlog_records, batch_bodies, body_stats, producer_values, single_bodies  # noqa: E402
from pipeline import stage_engine_backlog, wait_quiet  # noqa: E402
from report import add_ratios, code_version, machine, median_of, table, write  # noqa: E402

FULL = {"producer_messages": 100_000, "producer_runs": 3, "producer_keys": 10_000, "value_bytes": 400,
        "upsert_rows": 50_000, "upsert_runs": 3, "upsert_keys": 10_000, "upsert_batch": 1_000,
        "single_concurrency": 32, "batch_concurrency": 8, "batch_size": 100, "http_customers": 10_000,
        "warmup_s": 2.0, "single_duration_s": 12.0, "batch_duration_s": 12.0,
        "backlog_events": 20_000, "backlog_customers": 5_000, "backlog_timeout_s": 240.0,
        "latency_rate": 50.0, "latency_duration_s": 20.0, "probe_every": 5, "all_polled_duration_s": 10.0,
        "poll_s": 0.010, "latency_timeout_s": 30.0}
QUICK = FULL | {"producer_messages": 30_000, "upsert_rows": 20_000, "warmup_s": 1.0,
                "single_duration_s": 3.0, "batch_duration_s": 3.0, "backlog_events": 5_000,
                "backlog_customers": 1_250, "backlog_timeout_s": 120.0, "latency_duration_s": 6.0,
                "all_polled_duration_s": 0.0}


CLIENTS = {"raw": "bench/rawhttp.py keep-alive pool (one connection per task)",
           "httpx": "one shared httpx.AsyncClient, limits raised"}


class PhaseCpu:
    """Called with "start"/"end" around a timed part; keeps the cores each process used."""

    def __init__(self, meter: CpuMeter) -> None:
        self.meter, self.begin, self.cores = meter, None, {}

    def __call__(self, what: str) -> None:
        if what == "start":
            self.begin = self.meter.snapshot()
        elif self.begin is not None:
            self.cores = CpuMeter.cores(self.begin, self.meter.snapshot())


async def measure(h: Harness, p: dict, data: dict, report: dict, timings: dict, client: str) -> None:
    meter = CpuMeter(h.cpu_roles)
    base, product = report["baselines"], report["product"]

    mark = time.perf_counter()
    runs = []
    for n in range(p["producer_runs"]):
        cpu = PhaseCpu(meter)
        run = await producer_run(h.kafka(), f"{h.config.topic_prefix}bench.producer.{n}", data["pairs"],
                                 p["producer_messages"], phase=cpu)
        runs.append(run | {"cpu_cores": cpu.cores})
    base["producer"] = {"value": median_of(runs), "unit": "msgs/s", "runs": runs,
                        "cpu_cores": runs[-1]["cpu_cores"],
                        "params": {k: p[k] for k in ("producer_messages", "producer_keys", "value_bytes")} | {
                            "acks": "all", "linger_ms": 5, "max_batch_size": 65536, "partitions": 6,
                            "enable_idempotence": h.infra.kafka_idempotence, "pattern": "send() all, gather futures"}}
    timings["producer"] = time.perf_counter() - mark

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

    for name, path, bodies, conc, duration, batch in (
            ("ingest_single", "/v1/track", data["single"], p["single_concurrency"], p["single_duration_s"], False),
            ("ingest_batch", "/v1/batch", data["batch"], p["batch_concurrency"], p["batch_duration_s"], True)):
        mark = time.perf_counter()
        cpu = PhaseCpu(meter)
        result = await ingest_load(h.url("ingest-sink"), h.write_key, path=path, bodies=bodies, batch=batch,
                                   concurrency=conc, warmup_s=p["warmup_s"], duration_s=duration, phase=cpu,
                                   client_kind=client)
        product[name] = {"value": result["rate"], "unit": "events/s", **result, "cpu_cores": cpu.cores,
                         "params": {"path": path, "concurrency": conc, "warmup_s": p["warmup_s"],
                                    "duration_s": duration, "client": CLIENTS[client],
                                    "bodies": body_stats(bodies), "events_per_request": p["batch_size"] if batch else 1,
                                    "topic": h.sink_prefix + "touchpoints.v1 (nothing consumes it)"}}
        timings[name] = time.perf_counter() - mark

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
        product[name] = {"unit": "ms", **result, "cpu_cores": cpu.cores, "quiet_before": quiet}
        timings[name] = time.perf_counter() - mark


def build_payloads(p: dict) -> dict:
    return {"pairs": producer_values(p["producer_keys"], size=p["value_bytes"]),
            "single": single_bodies(20_000, customers=p["http_customers"]),
            "batch": batch_bodies(200, size=p["batch_size"], customers=p["http_customers"]),
            "backlog": backlog_records(p["backlog_events"], customers=p["backlog_customers"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter run (about a minute)")
    parser.add_argument("--out", type=Path, default=Path("bench/report.json"))
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                        help="HTTP client of the load generator (default raw: see bench/rawhttp.py)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, data) afterwards")
    args = parser.parse_args()
    params = QUICK if args.quick else FULL
    started = time.perf_counter()
    data = build_payloads(params)
    # The load generator's own GC: everything built so far is long-lived; collect rarely.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    timings = {"build_payloads": time.perf_counter() - started}
    report = {"mode": "quick" if args.quick else "full", "parameters": params, "baselines": {}, "product": {},
              "phases_s": timings, "load_generator": {"gc": "freeze + set_threshold(50000, 20, 100)",
                                                     "process": "this one (bench/run.py)",
                                                     "http_client": CLIENTS[args.client]}}
    harness, failed = Harness(), True
    try:
        mark = time.perf_counter()
        harness.start()
        timings["start_stack"] = time.perf_counter() - mark
        report["stack"] = harness.describe()
        report["machine"] = machine(report["stack"])
        report["code"] = code_version()
        asyncio.run(measure(harness, params, data, report, timings, args.client))
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
    timings["total"] = time.perf_counter() - started
    for key in timings:
        timings[key] = round(timings[key], 2)
    if report["baselines"].get("producer") and report["baselines"].get("asyncpg_upsert"):
        add_ratios(report)
    write(report, args.out)
    if "machine" in report and len(report["baselines"]) == 2:
        print(table(report))
    print(f"\nreport: {args.out}  (total {timings['total']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
