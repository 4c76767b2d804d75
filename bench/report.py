"""The report: machine facts, every figure with its unit, parameters and raw numbers (JSON), and a
readable table where each product figure stands next to its ratio to the raw baseline it is
bounded by, measured in the same run."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil
from cpu import top, verdict
from knee_report import rows as knee_rows
from suites import lines as suite_lines


def host() -> dict:
    """The machine and the Python measured on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu_count": os.cpu_count(), "cpu_count_physical": psutil.cpu_count(logical=False), "cpu_model": model,
            "python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds")}


def machine(harness_description: dict | None) -> dict:
    """The host, and the stack's broker and PostgreSQL (None: only the suites ran, each on its own)."""
    if harness_description is None:
        return {**host(), "broker": "-", "kafka_idempotence": None, "postgres_durable": None}
    return {**host(), "broker": harness_description["broker"],
            "kafka_idempotence": harness_description["kafka_idempotence"],
            "postgres_durable": harness_description["postgres_durable"]}


def code_version() -> dict:
    """The commit measured, and the files changed on top of it (others edit the tree meanwhile)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                  cwd=Path(__file__).resolve().parent).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if not line[3:].startswith("bench/")]
    return {"git_head": git("rev-parse", "--short", "HEAD").strip(), "changed_outside_bench": changed}


def median_of(runs: list[dict], key: str = "rate") -> float | None:
    values = [run[key] for run in runs if run.get(key)]
    return round(statistics.median(values), 1) if values else None


def ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 3) if value and base else None


def add_ratios(report: dict) -> None:
    base, product = report["baselines"], report["product"]
    producer = base.get("producer", {}).get("value")
    upsert = base.get("asyncpg_upsert", {}).get("value")
    null = base.get("null_endpoint", {}).get("value")
    hashed = base.get("producer_hashed", {}).get("value")
    for name in ("ingest_single", "ingest_batch", "ingest_batch_2w"):
        if name in product:
            product[name]["ratio"] = {"to_producer_baseline": ratio(product[name]["value"], producer)}
            if hashed:
                product[name]["ratio"]["to_producer_hashed_baseline"] = ratio(product[name]["value"], hashed)
    if "ingest_single" in product:
        product["ingest_single"]["ratio"]["to_null_endpoint"] = ratio(product["ingest_single"]["value"], null)
    if "stage_engine" in product:
        value = product["stage_engine"]["value"]
        product["stage_engine"]["ratio"] = {"to_upsert_baseline": ratio(value, upsert),
                                            "to_producer_baseline": ratio(value, producer)}


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _cpu_text(cores: dict[str, float], first: tuple[str, ...] = ()) -> str:
    """The process under test first, then the load generator ("bench"), then the busiest others."""
    if not cores:
        return ""
    order = [r for r in first if r in cores] + (["bench"] if "bench" in cores and "bench" not in first else [])
    order += [r for r in cores if r not in order and r != "not-ours"][:max(0, 4 - len(order))]
    return " ".join(f"{role}={cores[role]:.2f}" for role in order)


def table(report: dict) -> str:
    m, b, p = report["machine"], report["baselines"], report["product"]
    goals = report.get("goals", {})
    ncpu = m["cpu_count"]
    lines = [f"Lifecycle benchmark ({report['mode']}) - {ncpu} CPUs, Python {m['python']}, broker {m['broker']}, "
             f"durable PostgreSQL, {m['started_at']}", ""]
    header = f"{'figure':<46} {'value':>10}  {'unit':<10} {'ratio to baseline (goal)':<40} cpu (cores)"
    lines += [header, "-" * len(header)]

    def row(label, value, unit, ratio_text, fig, first=()):
        lines.append(f"{label:<46} {_fmt(value):>10}  {unit:<10} {ratio_text:<40} "
                     f"{_cpu_text(fig.get('cpu_cores', {}), first)}")

    if "producer" in b:
        row("[baseline] aiokafka keyed producer (median)", b["producer"]["value"], "msgs/s", "-", b["producer"],
            ("broker",))
    if "producer_hashed" in b:
        row("[baseline] same, ingest's partitioner (median)", b["producer_hashed"]["value"], "msgs/s", "-",
            b["producer_hashed"], ("broker",))
    if "asyncpg_upsert" in b:
        row("[baseline] asyncpg unnest upsert (median)", b["asyncpg_upsert"]["value"], "rows/s", "-",
            b["asyncpg_upsert"], ("postgres",))
    if "null_endpoint" in b:
        row("[baseline] no-Kafka FastAPI POST /v1/track", b["null_endpoint"]["value"], "req/s", "-",
            b["null_endpoint"], ("null-app",))
    for name, label, key, base_name in (
            ("ingest_single", "ingest /v1/track single events, 1 worker", "to_null_endpoint", "null endpoint"),
            ("ingest_batch", "ingest /v1/batch 100-event batches, 1 worker", "to_producer_baseline", "producer"),
            ("ingest_batch_2w", "ingest /v1/batch 100-event batches, 2 workers", "to_producer_baseline",
             "producer")):
        if name in p:
            fig = p[name]
            r = fig.get("ratio", {}).get(key)
            goal = f" ({goals[name]})" if name in goals else ""
            target = fig["params"]["target"]
            first = (target, *sorted(c for c in fig.get("cpu_cores", {}) if c.startswith(target + "[")))
            row(label, fig["value"], "events/s", f"{_fmt(r, 3)} x {base_name}{goal}", fig, first)
            if name == "ingest_single" and fig.get("ratio", {}).get("to_producer_baseline"):
                lines.append(f"{'':<46} {'':>10}  {'':<10} {_fmt(fig['ratio']['to_producer_baseline'], 3)} x producer")
            if name != "ingest_single" and fig.get("ratio", {}).get("to_producer_hashed_baseline"):
                lines.append(f"{'':<46} {'':>10}  {'':<10} "
                             f"{_fmt(fig['ratio']['to_producer_hashed_baseline'], 3)} x producer, same partitioner")
            if fig.get("connections_per_worker"):
                spread = ", ".join(f"{w}: {n}" for w, n in fig["connections_per_worker"].items())
                lines.append(f"{'  (keep-alive connections per worker':<46} {spread})")
    for name, label in (("ack_latency_single", "POST /v1/track -> 200, open loop"),
                        ("ack_latency_batch", "POST /v1/batch -> 200, open loop")):
        if name in p:
            fig = p[name]
            q = fig["post_to_200_ms"]
            title = f"{label} at {fig['params']['fraction']:.0%} of capacity"
            tail = f"p90 {_fmt(q['p90'], 1)} p99 {_fmt(q['p99'], 1)} max {_fmt(q['max'], 0)}"
            lines.append(f"{title:<46} {'p50 ' + _fmt(q['p50'], 1):>10}  {'ms':<10} {tail:<40} "
                         f"{_cpu_text(fig.get('cpu_cores', {}), ('ingest-sink',))}")
            offered = (f"  (offered {_fmt(fig['offered_rate_per_s'])} req/s = "
                       f"{_fmt(fig['params']['offered_events_per_s'])} events/s; goal {goals.get('ack_latency', '-')})")
            lines.append(f"{offered:<46} achieved {_fmt(fig['achieved_rate_per_s'])} req/s, "
                         f"errors {sum(fig['errors'].values())}, send lag p99 {_fmt(fig['send_lag_ms']['p99'], 1)} ms, "
                         f"peak in flight {fig['peak_requests_in_flight']}")
    if "stage_engine" in p:
        fig = p["stage_engine"]
        r = fig.get("ratio", {})
        row("stage engine over backlog (consumed+applied)", fig["value"], "events/s",
            f"{_fmt(r.get('to_upsert_baseline'), 3)} x upsert, {_fmt(r.get('to_producer_baseline'), 3)} x prod", fig,
            ("stage-engine",))
        lines.append(f"{'  (restart -> first event applied':<46} {_fmt(fig.get('first_consumed_after_s'), 1):>10}  "
                     f"{'s':<10} start-up + consumer-group join; {fig['backlog']:,} events over "
                     f"{fig['params']['customers']:,} customers)")
    if "stage_engine_scale_out" in p:
        lines += _scale_out_rows(p["stage_engine_scale_out"], ncpu)
    for name in ("latency", "latency_all_polled"):
        if name in p:
            lines += _latency_rows(p[name], name)
    if "pipeline_knee" in p:
        lines += knee_rows(p["pipeline_knee"], ncpu)
    for name, prof in report.get("profiles", {}).items():
        if prof.get("error"):
            lines.append(f"profile {name}: py-spy failed: {prof['error']}")
        else:
            lines.append(f"profile {name}: {prof['summary']['samples']:,} samples, "
                         f"{_fmt(prof['rate_under_profiler'])} events/s under the profiler -> {prof['summary_text']}")
    if report.get("services"):
        lines += ["", "services' own benches (each its own PostgreSQL, its baseline measured in the same run):"]
        for label, value, unit, ratio_text in suite_lines(report["services"]):
            lines.append(f"{label:<46} {_fmt(value):>10}  {unit:<10} {ratio_text}")
    lines += ["", "CPU reading per phase:"]
    for group in (b, p):
        for name, fig in group.items():
            if fig.get("cpu_cores"):
                lines.append(f"  {name:<18} {verdict(fig['cpu_cores'], cpu_count=ncpu)}")
    errors = {name: fig.get("errors") for group in (b, p) for name, fig in group.items() if fig.get("errors")}
    if errors:
        lines += ["", f"errors: {json.dumps(errors)}"]
    return "\n".join(lines)


def _scale_out_rows(scale: dict, ncpu: int) -> list[str]:
    """The stage engine with 1, 2, 3 instances in one group, beside the upsert baseline of the same phase."""
    base = scale["upsert_baseline"]
    out = [f"{'[baseline] asyncpg unnest upsert (scale-out)':<46} {_fmt(base.get('rate')):>10}  {'rows/s':<10} "
           f"{'-':<40} {_cpu_text(base.get('cpu_cores', {}), ('postgres',))}"]
    for fig in scale["counts"]:
        r = fig.get("ratio", {})
        names = ("stage-engine", *(f"stage-engine-{n}" for n in range(2, fig["instances"] + 1)))
        ratio_text = f"{_fmt(r.get('to_upsert_baseline'), 3)} x upsert, {_fmt(r.get('to_one_instance'), 2)} x one"
        out.append(f"{'stage engine, ' + str(fig['instances']) + ' instance(s) in one group':<46} "
                   f"{_fmt(fig.get('rate')):>10}  {'events/s':<10} {ratio_text:<40} "
                   f"{_cpu_text(fig.get('cpu_cores', {}), names)}")
        if fig.get("cpu_cores"):
            out.append(f"{'':<48}{verdict(fig['cpu_cores'], cpu_count=ncpu)}")
    return out


def _latency_rows(lat: dict, name: str) -> list[str]:
    polled = ("every customer polled" if lat["probe_every"] == 1 else f"1 in {lat['probe_every']} customers polled")
    out = [f"{name}: {lat['offered_rate_per_s']:g} customers/s for {lat['duration_s']:g} s, open loop, "
           f"{polled} every {lat['poll_interval_ms']:g} ms ({lat['polls_per_s']:,.0f} polls/s); "
           f"errors {sum(lat['errors'].values())}; cpu {top(lat.get('cpu_cores', {}))}"]
    rows = [("  POST /v1/track -> 200 (broker ack)", lat["post_ack_ms"]),
            ("  POST -> stage engine shows 'purchase'", lat["to_stage_purchase_ms"]),
            ("  POST -> loyalty balance has an entry", lat["to_loyalty_entry_ms"])]
    server = lat.get("server_side")
    if server:
        rows += [("  POST -> transition processed_at (all)", server["to_stage_processed_at_ms"]),
                 ("  POST -> ledger entry created_at (all)", server["to_ledger_created_at_ms"])]
    hop = lat.get("baseline_kafka_hop_ms") or {}
    if hop.get("p50") is not None:
        out.append(f"  [baseline] raw Kafka hop (aiokafka produce -> consume, {hop['rate']:g}/s)  "
                   f"p50 {_fmt(hop['p50'], 1)} ms  p99 {_fmt(hop['p99'], 1)} ms "
                   f"({hop['received']:,}/{hop['records']:,} received)")
    for label, q in rows:
        ratio = (f"  = {q['p50'] / hop['p50']:,.1f} / {q['p99'] / hop['p99']:,.1f} x the raw hop"
                 if hop.get("p50") and hop.get("p99") and q.get("p50") is not None and q.get("p99") is not None else "")
        out.append(f"{label:<44} {'p50 ' + _fmt(q['p50'], 1):>12}  {'ms':<9} "
                   f"p99 {_fmt(q['p99'], 1)} ms, max {_fmt(q['max'], 0)} ms{ratio}")
    return out


def write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
