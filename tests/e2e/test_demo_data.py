"""`python3 dev.py demo` against the whole pipeline: a small demo shop goes in through /v1/import, every
event accepted, and the stage engine ends up with the buyers' orders and customers in the stages the
shop's history earns - purchase, retention and the drift stages among them. The demo then waits for the
stage engine to apply what it sent and asks for a refresh, so the dashboard's scores hold every buyer."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections import Counter

from lifecycle_devstack.demo import generate, window_end
from lifecycle_shared.stages import Stage
from lifecycle_shared.testing import eventually

CUSTOMERS, SEED = 60, 11
PREFIX = f"demo-{SEED}-"


def expected_orders(calls: list[dict]) -> dict[str, int]:
    """Each buyer's orders that still count (a refunded order does not), by userId."""
    refunded = {call["properties"]["order_id"] for call in calls if call.get("event") == "Order Refunded"}
    return Counter(call["userId"] for call in calls if call.get("event") == "Order Completed"
                   and call["properties"]["order_id"] not in refunded)


async def demo_stage_counts(pipeline, client) -> Counter:
    """Our demo visitors per stage, from the stage engine's customer list (paged through)."""
    counts: Counter = Counter()
    for stage in Stage:
        cursor = None
        while True:
            page = await pipeline.get(client, "stage-engine", f"/v1/customers?stage={stage.value}&limit=500"
                                      + (f"&cursor={cursor}" if cursor else ""))
            counts[stage.value] += sum(1 for c in page["customers"] if c["customer_id"].startswith(PREFIX)
                                       or any(a.startswith(PREFIX) for a in c["anonymous_ids"]))
            cursor = page["next_cursor"]
            if not cursor:
                break
    return counts


async def test_the_demo_shop_goes_in_whole_and_its_buyers_reach_purchase_retention_and_drift(pipeline):
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "lifecycle_devstack.demo", "--customers", str(CUSTOMERS), "--seed", str(SEED),
        "--url", pipeline.url("ingest"), "--write-key", pipeline.write_key, "--stage-engine-url",
        pipeline.url("stage-engine"), "--admin-token", pipeline.admin_token], capture_output=True, text=True,
        timeout=120)
    calls = list(generate(CUSTOMERS, end=window_end(), seed=SEED))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(calls)} events sent, {len(calls)} accepted, 0 refused" in done.stdout, done.stdout
    orders = expected_orders(calls)
    visitors = {call["anonymousId"] for call in calls if "anonymousId" in call}
    assert 30 < len(orders) < len(visitors) == CUSTOMERS

    async with pipeline.client() as client:
        async def buyers_complete():
            profiles = [await pipeline.get(client, "stage-engine", f"/v1/customers/{user}") for user in orders]
            found = {p["user_id"]: p["orders"] for p in profiles if p}
            return found if found == orders else None

        await eventually(buyers_complete, timeout_s=30, what="every demo buyer's profile with their orders")

        async def every_visitor_staged():
            counts = await demo_stage_counts(pipeline, client)
            return counts if sum(counts.values()) == CUSTOMERS else None

        counts = await eventually(every_visitor_staged, timeout_s=30, what="a stage for every demo visitor")
    buyers = sum(counts[stage] for stage in ("purchase", "retention", "loyalty", "at_risk", "lapsed"))
    assert buyers == len(orders), counts  # a buyer whose only order was refunded has no order that counts
    assert counts["purchase"] and counts["retention"] + counts["loyalty"] and counts["at_risk"] + counts["lapsed"]
    assert counts["awareness"] + counts["consideration"] == CUSTOMERS - len(orders), counts

    # The demo's last step: the events applied, a refresh asked for and waited for, and said so.
    assert "the stage engine has applied them" in done.stdout, done.stdout
    refreshed = re.search(r"figures refreshed at (\S+): (\d+) buyers scored", done.stdout)
    assert refreshed, done.stdout
    async with pipeline.client() as client:
        value = await pipeline.get(client, "stage-engine", "/v1/analytics/clv?top=200")
        fits = await pipeline.get(client, "stage-engine", "/v1/analytics/fits?limit=100")
    # The refresh the demo waited for scored every buyer the stage engine had (other tests' shops too).
    done_refresh = next(f for f in fits if f["kind"] == "requested" and f["status"] == "done"
                        and f["calibration_end"] is None)
    assert int(refreshed.group(2)) == done_refresh["result"]["scored_customers"] >= len(orders), done_refresh
    ours = {row["customer_id"] for row in value["top"] if row["customer_id"].startswith(PREFIX)}
    assert ours or value["customers"] > 200, value["customers"]
