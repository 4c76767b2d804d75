"""The services' own benches (bench/messaging.py, bench/loyalty.py, bench/webhooks.py, bench/reads.py), run by
bench/run.py after its stack has stopped: each a process of its own starting its own PostgreSQL (and SMTP
sink, HTTP receiver or broker), each product figure next to the raw baseline it measured in the same run. This
module runs them, keeps their JSON in the report (`report["services"]`) and lists their ratio lines for the table."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITES = {
    "messaging": {"full": [], "quick": ["--transitions", "1000", "--batch", "250"]},
    "loyalty": {"full": [], "quick": ["--orders", "1000", "--seconds", "4"]},
    "webhooks": {"full": [], "quick": ["--events", "1000", "--endpoints", "1,4", "--seconds", "4"]},
    "reads": {"full": [], "quick": ["--quick"]},
}


def run_suite(name: str, *, quick: bool) -> dict:
    """Run bench/<name>.py to completion; its report, or {"error": ...} with the end of its output."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"{name}.json"
        args = SUITES[name]["quick" if quick else "full"]
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *args, "--out", str(out)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            return {"error": f"exit {done.returncode}: {done.stderr[-2000:]}"}
        return json.loads(out.read_text())


def _read_lines(reads: dict) -> list[tuple[str, float | None, str, str]]:
    """bench/reads.py: the profile API's p99 per offered rate beside the write load, against /healthz."""
    out: list[tuple[str, float | None, str, str]] = []
    for rate, found in reads.items():
        if not rate.endswith("/s"):
            continue
        product, base = found["profile"], found["healthz"]
        out.append((f"reads: GET /v1/customers/{{id}} p99 at {rate}", product["post_to_200_ms"]["p99"], "ms",
                    f"{found['profile_p99_ratio_to_healthz']} x /healthz p99 ({base['post_to_200_ms']['p99']} ms); "
                    f"{product['achieved_rate_per_s']}/s achieved; CPU {product['api_cpu_ms_per_request']} ms/req "
                    f"({found['profile_cpu_ratio_to_healthz']} x); other load {product['cpu_cores'].get('not-ours')} "
                    "cores (goal p99 <= 10 ms at 2000/s)"))
    return out


def lines(services: dict) -> list[tuple[str, float | None, str, str]]:
    """(label, value, unit, ratio text) per product figure of the suites that ran."""
    out: list[tuple[str, float | None, str, str]] = []
    if "queue" in (m := services.get("messaging", {})):
        queue, deliver = m["queue"], m["deliver"]
        out.append(("messaging: transitions -> queued/suppressed", queue["transitions_per_s"], "events/s",
                    f"{queue['ratio_to_baseline']} x batched INSERT ({queue['baseline_insert']['rows_per_s']}/s)"))
        out.append(("messaging: emails sent to local SMTP", deliver["sent_per_s"], "emails/s",
                    f"{deliver['ratio_to_baseline']} x raw aiosmtplib ({deliver['baseline_smtp']['emails_per_s']}/s)"))
    if "ledger" in (loyalty := services.get("loyalty", {})):
        ledger, redemption = loyalty["ledger"], loyalty["redemptions"]
        out.append(("loyalty: orders -> ledger entries", ledger["entries_per_s"], "entries/s",
                    f"{ledger['ratio_to_baseline']} x batched INSERT "
                    f"({ledger['baseline_batched_insert']['rows_per_s']}/s)"))
        raw = redemption["baseline_healthz"]
        out.append(("loyalty: redemption p99, concurrent clients", redemption["redemption"]["p99_ms"], "ms",
                    f"{redemption['p99_ratio']} x /healthz p99 ({raw['p99_ms']} ms)"))
    for product in services.get("webhooks", {}).get("backlog", []):
        out.append((f"webhooks: deliveries, {product['endpoints']} endpoint(s)", product["deliveries_per_s"],
                    "posts/s", f"{product['ratio_to_baseline']} x raw POSTs ({product['baseline']['posts_per_s']}/s)"))
    out += _read_lines(services.get("reads", {}))
    for name, found in services.items():
        if "error" in found:
            out.append((f"{name}: FAILED", None, "", found["error"].strip().splitlines()[-1][:80]))
    return out
