"""The stage engine's event path without Kafka: `ConsumerRunner.process` over the bench's mixed workload.

    .venv/bin/python bench/stage_engine_apply.py [--events 20000] [--customers 5000] [--runs 3] [--profile]

Starts the embedded PostgreSQL (durable, as the bench's) and Tansu the way the tests do, builds the
backlog records `bench/payloads.py` builds for the real bench (with the headers ingest sets), and
applies them in polled-size batches (`KafkaSettings.max_poll_records`) through the real runner and the
service's `handlers.routes()`: decode -> validate -> inbox -> handler -> outbox -> commit, one transaction a batch.
Each run gets a fresh namespace (empty databases); its first batch is untimed (warm-up), as the real
bench's rate starts at the first batch consumed. In the same process: the raw batched asyncpg upsert
baseline of bench/baselines.py, and the ratio. GC is tuned as the service process tunes it.

Also reported per run: SQL statements per batch (and how many were executemany), the share of wall time
spent inside cursor execution (asyncpg round trips, PostgreSQL included), this process's CPU time per event
(the per-event Python, which a busy box slows less than it slows the rate) and the cores the rest of the
machine used meanwhile (PostgreSQL, py-spy and everyone else's load). `--profile`
records the last run's timed part with py-spy (non-blocking, as bench/pyspy.py) and prints its summary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import psutil  # noqa: E402
import uvloop  # noqa: E402
from aiokafka import ConsumerRecord  # noqa: E402
from baselines import upsert_prepare, upsert_run  # noqa: E402
from lifecycle_devstack.infra import Infra  # noqa: E402
from lifecycle_devstack.services import BY_NAME, StackConfig  # noqa: E402
from lifecycle_shared.cli import tune_gc  # noqa: E402
from lifecycle_shared.db import create_engine  # noqa: E402
from lifecycle_shared.events import kafka_headers  # noqa: E402
from lifecycle_shared.kafka.runner import ConsumerRunner  # noqa: E402
from lifecycle_shared.settings import KafkaSettings  # noqa: E402
from lifecycle_shared.topics import Topics  # noqa: E402
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES  # noqa: E402
from lifecycle_stage_engine.handlers import routes  # noqa: E402
from payloads import backlog_records  # noqa: E402
from pyspy import pyspy_binary, render, summarize  # noqa: E402
from sqlalchemy import event  # noqa: E402

PARTITIONS = 6


def consumer_records(topic: str, pairs: list[tuple[bytes, bytes]]) -> list[ConsumerRecord]:
    """The records as the consumer hands them over: keyed partition, offsets, ingest's headers."""
    offsets: Counter = Counter()
    records = []
    for key, value in pairs:
        partition = zlib.crc32(key) % PARTITIONS
        event_type = value.split(b'"type":"', 1)[1].split(b'"', 1)[0].decode()
        records.append(ConsumerRecord(topic=topic, partition=partition, offset=offsets[partition], timestamp=0,
                                      timestamp_type=0, key=key, value=value, checksum=None,
                                      serialized_key_size=len(key), serialized_value_size=len(value),
                                      headers=kafka_headers(event_type)))
        offsets[partition] += 1
    return records


class StatementCounter:
    """Statements (and executemany calls) sent, and the time spent in cursor execution."""

    def __init__(self, engine) -> None:
        self.statements = self.many = 0
        self.seconds = 0.0
        self.kinds: Counter = Counter()
        self.kind_seconds: Counter = Counter()
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements += 1
        self.many += bool(executemany)
        kind = " ".join(statement.split()[:3])[:40] + (" [many]" if executemany else "")
        self.kinds[kind] += 1
        conn.info["bench_t"] = kind, time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        kind, started = conn.info.pop("bench_t")
        self.seconds += time.perf_counter() - started
        self.kind_seconds[kind] += time.perf_counter() - started

    def by_kind(self) -> dict[str, tuple[int, float]]:
        """kind -> (statements, mean milliseconds each)."""
        return {kind: (n, round(1000 * self.kind_seconds[kind] / n, 2)) for kind, n in self.kinds.most_common()}

    def reset(self) -> None:
        self.statements = self.many = 0
        self.seconds = 0.0
        self.kinds.clear()
        self.kind_seconds.clear()


class Profiler:
    """py-spy on this very process, stopped (SIGINT: it writes what it has) when the timed part ends."""

    def __init__(self, out: Path, rate: int = 200) -> None:
        self.out, self.rate, self.process = out, rate, None

    def start(self) -> None:
        binary = pyspy_binary()
        if binary is None:
            print("py-spy not found", file=sys.stderr)
            return
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([binary, "record", "--pid", str(os.getpid()), "--rate", str(self.rate),
                                         "--nonblocking", "--format", "raw", "--function", "--full-filenames",
                                         "--output", str(self.out)], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)  # let it attach before the clock starts

    def stop(self) -> str | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=60)
        if not self.out.exists():
            return f"py-spy wrote nothing: {output.strip()[-500:]}"
        return render("stage-engine apply (micro-bench)", summarize(self.out, top=20))


async def apply_run(config: StackConfig, pairs: list[tuple[bytes, bytes]], *, batch: int,
                    profiler: Profiler | None) -> dict:
    engine = create_engine(config.database_url(BY_NAME["stage-engine"]))
    topics = Topics(config.topic_prefix)
    route = routes(topics=topics, rules=lambda: DEFAULT_RULES, clock=lambda: datetime.now(UTC))
    runner = ConsumerRunner(name="stage-engine", consumer=None, producer=None, engine=engine, route=route)
    records = consumer_records(topics.touchpoints, pairs)
    batches = [records[i:i + batch] for i in range(0, len(records), batch)]
    counter = StatementCounter(engine)
    try:
        await runner.process(batches[0])  # warm-up: first connection, first statements, caches
        counter.reset()
        if profiler:
            profiler.start()
        started, cpu_started, busy_started = time.perf_counter(), time.process_time(), machine_busy()
        for chunk in batches[1:]:
            await runner.process(chunk)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        other_cores = (machine_busy() - busy_started - cpu) / elapsed
        summary = profiler.stop() if profiler else None
        async with engine.connect() as conn:
            outbox = (await conn.exec_driver_sql("SELECT count(*) FROM outbox")).scalar_one()
            profiles = (await conn.exec_driver_sql(
                "SELECT count(*) FROM profiles WHERE merged_into IS NULL")).scalar_one()
    finally:
        await engine.dispose()
    timed = len(records) - len(batches[0])
    return {"events": timed, "seconds": round(elapsed, 3), "rate": round(timed / elapsed, 1),
            "statements_per_batch": round(counter.statements / (len(batches) - 1), 1),
            "executemany_per_batch": round(counter.many / (len(batches) - 1), 1),
            "sql_share": round(counter.seconds / elapsed, 3), "cpu_us_per_event": round(1e6 * cpu / timed, 1),
            "cores": round(cpu / elapsed, 2), "other_cores": round(other_cores, 2),
            "statement_kinds": counter.by_kind(),
            "outbox_rows": outbox, "profiles": profiles, "profile_summary": summary}


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every core, every process)."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + getattr(times, "irq", 0) + getattr(times, "softirq", 0)


async def upsert_baseline(infra: Infra, config: StackConfig, *, rows: int, runs: int) -> list[dict]:
    database = config.database_prefix + "bench_scratch"
    batches = await upsert_prepare(infra.postgres_url, database, 10_000, 1_000)
    return [await upsert_run(infra.postgres_url, database, batches, rows, phase=lambda _: None) for _ in range(runs)]


def rates(runs: list[dict]) -> str:
    return ", ".join(f"{run['rate']:,.0f}" for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=KafkaSettings().max_poll_records)
    parser.add_argument("--upsert-rows", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true", help="py-spy the last run's timed part")
    parser.add_argument("--profile-out", type=Path, default=BENCH_DIR / "profiles" / "stage_engine_apply.txt")
    parser.add_argument("--statements", action="store_true", help="print the statement kinds of each run")
    args = parser.parse_args()

    tune_gc()
    pairs = backlog_records(args.events, customers=args.customers)
    infra = Infra.start(durable_postgres=True)
    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    try:
        runs = []
        for n in range(args.runs):
            config = infra.stack_config()
            infra.prepare(config, services=[BY_NAME["stage-engine"]])
            profiler = Profiler(args.profile_out) if args.profile and n == args.runs - 1 else None
            run = runner.run(apply_run(config, pairs, batch=args.batch, profiler=profiler))
            runs.append(run)
            print(f"run {n + 1}: {run['rate']:>9,.0f} events/s  ({run['events']} events in {run['seconds']} s; "
                  f"{run['statements_per_batch']} statements/batch, {run['executemany_per_batch']} executemany; "
                  f"{run['sql_share']:.0%} of wall time in cursor execution; outbox {run['outbox_rows']}, "
                  f"profiles {run['profiles']}; this process {run['cpu_us_per_event']} CPU us/event at "
                  f"{run['cores']} cores; other load {run['other_cores']} cores, PostgreSQL included)", flush=True)
            if args.statements:
                for kind, (count, ms) in run["statement_kinds"].items():
                    print(f"      {count:6d} x {ms:6.2f} ms  {kind}")
        base = runner.run(upsert_baseline(infra, infra.stack_config(), rows=args.upsert_rows, runs=3))
    finally:
        runner.close()
        infra.stop()
    rate = statistics.median(r["rate"] for r in runs)
    upsert = statistics.median(r["rate"] for r in base)
    print(f"\nstage engine apply: median {rate:,.0f} events/s over {args.runs} runs "
          f"({rates(runs)}); batch {args.batch}, {args.events} events, "
          f"{args.customers} customers")
    print(f"asyncpg unnest upsert baseline: median {upsert:,.0f} rows/s ({rates(base)})")
    print(f"ratio: {rate / upsert:.3f} x baseline (goal >= 0.2)")
    if runs[-1]["profile_summary"]:
        print("\n" + runs[-1]["profile_summary"])
        print(f"\nraw collapsed stacks: {args.profile_out}")


if __name__ == "__main__":
    main()
