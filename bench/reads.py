"""Reads beside writes: the profile API at a storefront's rate while events flow through the pipeline.

Storefronts call the stage engine's `GET /v1/customers/{id}` while rendering a page (issue 20, "Reads":
p99 <= 10 ms at 2,000 requests/s beside the write load). This fills a fresh stage-engine database with N
profiles (bench/profile_api.py's fill), starts the stage engine as a deployment runs it - an `api`-role
process (`<PREFIX>WORKERS` uvicorn workers) beside a `consumer`-role one - and ingest, then:

  writes: a separate process offers `--write-rate` events/s to ingest's /v1/batch (100-event batches of
          the bench's storefront mix, for the same customers), open loop, for the whole run; the stage
          engine consumes them (events applied = its inbox rows counted before and after).
  reads:  open loop at each of `--rates` requests/s (bench/openloop.py: latency from each request's
          scheduled time, no coordinated omission), one phase after the other, with the writes on:
            healthz  `GET /healthz` of the same api process: the raw baseline (same server, same
                     middleware, no token, no database)
            profile  `GET /v1/customers/{id}` for random customers (the product figure)
The product figure is reported next to the baseline measured in the same run (p99, achieved rate and the
API's CPU ms per request, each as a ratio), with the cores each process used per phase (`not-ours`: the
rest of the shared machine; CPU per request is the figure that load skews least).
`--profile`: py-spy on one api worker during the highest rate's profile phase (bench/profiles/reads_api.txt).

    .venv/bin/python bench/reads.py [--quick] [--rates 500,1000,2000] [--write-rate 1000] [--api-workers 2] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import random
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil
from cpu import CpuMeter, PhaseCpu, verdict
from harness import INGEST_ENV
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME, ServiceProcess, run_module
from openloop import open_loop
from payloads import batch_bodies, customer_id
from profile_api import TOKEN, fill, fresh_stage_engine_database
from pyspy import Recorder, render, summarize

HERE = Path(__file__).resolve().parent
FULL = {"profiles": 100_000, "rates": [500.0, 1000.0, 2000.0], "write_rate": 1000.0, "seconds": 10.0,
        "warmup_s": 2.0}
QUICK = FULL | {"profiles": 20_000, "rates": [2000.0], "seconds": 4.0, "warmup_s": 1.0}
BATCH = 100
READ_CONNECTIONS = 64


def _writer(url: str, write_key: str, bodies: list[bytes], rate: float, seconds: float, out) -> None:
    """The write load, in its own process (its own event loop and core share, not the read generator's)."""
    result = asyncio.run(open_loop(url, write_key, path="/v1/batch", bodies=bodies, rate=rate, warmup_s=0.5,
                                   duration_s=seconds, connections=16, phase=lambda _: None, client_kind="raw"))
    out.put(result)


async def applied(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM inbox")
    finally:
        await conn.close()


async def read_phase(api_url: str, paths: list[str], *, rate: float, seconds: float, phase: PhaseCpu) -> dict:
    result = await open_loop(api_url, "", path="", bodies=[], paths=paths, rate=rate, warmup_s=1.0,
                             duration_s=seconds, phase=phase, connections=READ_CONNECTIONS, client_kind="raw",
                             headers={"authorization": f"Bearer {TOKEN}"})
    # The API's CPU per answer (all its workers): what the shared machine's other load does not change much.
    api_cpu_ms = phase.cores.get("stage-engine-api", 0) * result["seconds_to_last_response"] * 1000
    return result | {"api_cpu_ms_per_request": round(api_cpu_ms / max(1, result["ok"]), 3),
                     "cpu_cores": phase.cores, "cpu_verdict": verdict(phase.cores, cpu_count=psutil.cpu_count())}


async def read_phases(api_url: str, p: dict, meter: CpuMeter, recorder: Recorder | None) -> dict:
    """Per offered rate: /healthz (baseline), then the profile, each beside the writes."""
    rng = random.Random(7)
    profiles = [f"/v1/customers/{customer_id(rng.randint(1, p['profiles']))}" for _ in range(50_000)]
    await read_phase(api_url, profiles, rate=min(p["rates"]), seconds=p["warmup_s"], phase=PhaseCpu(meter))
    out = {}
    for rate in p["rates"]:
        top = rate == max(p["rates"])
        base = await read_phase(api_url, ["/healthz"], rate=rate, seconds=p["seconds"], phase=PhaseCpu(meter))
        product = await read_phase(api_url, profiles, rate=rate, seconds=p["seconds"],
                                   phase=PhaseCpu(meter, recorder.start if recorder and top else None))
        out[f"{rate:g}/s"] = {
            "healthz": base, "profile": product,
            "profile_p99_ratio_to_healthz": round(product["post_to_200_ms"]["p99"] / base["post_to_200_ms"]["p99"], 2),
            "profile_rate_ratio_to_healthz": round(product["achieved_rate_per_s"] / base["achieved_rate_per_s"], 3),
            "profile_cpu_ratio_to_healthz": round(product["api_cpu_ms_per_request"]
                                                  / max(base["api_cpu_ms_per_request"], 1e-6), 2)}
    return out


def measure(infra: Infra, p: dict, *, api_workers: int, profile: bool) -> dict:
    config, service, dsn = fresh_stage_engine_database(infra)
    config = dataclasses.replace(config, extra_env={**config.extra_env, **INGEST_ENV})
    infra.prepare(config, services=[BY_NAME["ingest"]])
    filled_s = asyncio.run(fill(dsn, p["profiles"]))
    logs = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    api_config = dataclasses.replace(config, ports={**config.ports, service.name: free_port()}, extra_env={
        **config.extra_env, f"{service.env_prefix}WORKERS": str(api_workers)})
    processes = {"ingest": ServiceProcess(BY_NAME["ingest"], config, logs / "ingest.log"),
                 "stage-engine-consumer": ServiceProcess(service, config, logs / "consumer.log", role="consumer"),
                 "stage-engine-api": ServiceProcess(service, api_config, logs / "api.log", role="api")}
    writer = None
    try:
        for process in processes.values():
            process.start()
        for process in processes.values():
            process.wait_ready()
        write_key = run_module(BY_NAME["ingest"], config, "create-key", "bench", "--server").strip()
        bodies = batch_bodies(200, size=BATCH, customers=p["profiles"])
        write_seconds = p["warmup_s"] + 2 * len(p["rates"]) * (p["seconds"] + 1.0) + 10.0  # every read phase
        results = multiprocessing.get_context("fork").Queue()
        writer = multiprocessing.get_context("fork").Process(
            target=_writer, args=(processes["ingest"].url, write_key, bodies, p["write_rate"] / BATCH,
                                  write_seconds, results))
        writer.start()
        api_root = psutil.Process(processes["stage-engine-api"].process.pid)
        workers = [c.pid for c in api_root.children() if "resource_tracker" not in " ".join(c.cmdline())]
        recorder = (Recorder((workers or [api_root.pid])[0], HERE / "profiles" / "reads_api.raw", rate=200,
                             duration_s=p["seconds"]) if profile else None)

        def roles() -> dict[str, list[int]]:
            found = {"bench": [psutil.Process().pid], "writer": [writer.pid] if writer.is_alive() else []}
            found |= {name: [process.process.pid] for name, process in processes.items()}
            for part in infra._owned:  # noqa: SLF001 - pids of what Infra started
                found["postgres" if hasattr(part, "data_dir") else "broker"] = [part.process.pid]
            return found

        time.sleep(1.0)  # the writes under way before the reads start
        before = asyncio.run(applied(dsn))
        started = time.perf_counter()
        reads = asyncio.run(read_phases(processes["stage-engine-api"].url, p, CpuMeter(roles), recorder))
        elapsed = time.perf_counter() - started
        events = asyncio.run(applied(dsn)) - before
        writes = results.get(timeout=write_seconds + 60)
        writer.join(timeout=30)
    finally:
        if writer is not None and writer.is_alive():
            writer.terminate()
        for process in processes.values():
            process.stop()
    report = {"params": p | {"api_workers": api_workers, "read_connections": READ_CONNECTIONS, "batch": BATCH},
              "fill_seconds": round(filled_s, 1), "deployment": "stage engine: api role (uvicorn workers) + consumer "
              "role, separate processes; ingest 1 worker", **reads,
              "writes": {"offered_events_per_s": p["write_rate"], "ingest_batches": writes,
                         "stage_engine_applied_events_per_s_during_reads": round(events / elapsed, 1)}}
    if recorder:
        recorder.finish()
        summary = summarize(recorder.out)
        (recorder.out.with_suffix(".txt")).write_text(render("stage-engine api worker, profile phase", summary))
        report["pyspy"] = summary
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rates", type=lambda text: [float(r) for r in text.split(",")],
                        help="offered read rates, comma-separated (default 500,1000,2000; --quick 2000)")
    parser.add_argument("--write-rate", type=float)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--profiles", type=int)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="py-spy on one api worker in the profile phase")
    parser.add_argument("--out", type=Path, default=HERE / "reads.json")
    args = parser.parse_args()
    p = dict(QUICK if args.quick else FULL)
    p |= {k: v for k in ("rates", "write_rate", "seconds", "profiles") if (v := getattr(args, k)) is not None}
    infra = Infra.start()
    try:
        report = measure(infra, p, api_workers=args.api_workers, profile=args.profile)
    finally:
        infra.stop()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "pyspy"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
