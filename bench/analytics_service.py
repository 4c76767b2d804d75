"""`bench/analytics.py`'s measures of the stage engine as the services run it (its own process): its first
scheduled refresh, each analytics endpoint over the raw keep-alive client, the dashboard's six calls at
once, and the dashboard's first paint and data-ready in headless Chromium."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import asyncpg
from http_load import percentiles
from profile_api import TOKEN, closed_loop
from rawhttp import Pool

# --- over HTTP: the stage engine as its own process ------------------------------------------------------

async def reset_analytics(dsn: str) -> None:
    """No scores, snapshots or fits: the service starts as on its first day and refreshes at once."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE customer_scores, rfm_snapshots, clv_fits")
        await conn.execute("VACUUM ANALYZE customer_scores")
    finally:
        await conn.close()


async def first_refresh(url: str, started: float, *, timeout_s: float) -> dict[str, Any]:
    client = Pool(url, size=1, headers={"authorization": f"Bearer {TOKEN}"})
    try:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            response = await client.get("/v1/analytics/fits?limit=5")
            fits = response.json() if response.status_code == 200 else []
            done = [f for f in fits if f["kind"] == "scheduled" and f["status"] in ("done", "failed")]
            if done:
                return {"seconds_since_process_start": round(time.perf_counter() - started, 1),
                        "status": done[0]["status"], "scored_customers": done[0]["result"].get("scored_customers")}
            await asyncio.sleep(0.25)
        raise TimeoutError(f"no scheduled fit done after {timeout_s}s")
    finally:
        await client.aclose()


async def over_http(url: str, dsn: str, figures: dict[str, Any], *, concurrency: int, seconds: float) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        scored = [row[0] for row in await conn.fetch("SELECT customer_id FROM customer_scores")]
    finally:
        await conn.close()
    client = Pool(url, size=concurrency, headers={"authorization": f"Bearer {TOKEN}"})
    await client.open(concurrency, stagger_s=0.01)
    sizes: dict[str, int] = {}

    def endpoint(name: str, path_of):
        async def call(rng) -> bool:
            response = await client.get(path_of(rng))
            sizes[name] = len(response.content)
            return response.status_code == 200
        return call

    endpoints = {
        "healthz": lambda rng: "/healthz",
        "stages": lambda rng: "/v1/analytics/stages",
        "funnel": lambda rng: "/v1/analytics/funnel",
        "cohorts": lambda rng: "/v1/analytics/cohorts",
        "rfm": lambda rng: "/v1/analytics/rfm",
        "clv": lambda rng: "/v1/analytics/clv",
        "transitions": lambda rng: "/v1/analytics/transitions",
        "customers_csv_champions": lambda rng: "/v1/analytics/customers.csv?segment=Champions",
        "customer_profile_with_scores": lambda rng: f"/v1/customers/{rng.choice(scored)}",
    }
    # What the in-process reads took for the same work (the raw baseline of each endpoint).
    in_process_ms = {"stages": ("stage_counts", "stage_mix_2y_month"), "funnel": ("funnel_90d",),
                     "cohorts": ("cohorts",), "transitions": ("recent_transitions_50",)}
    results: dict[str, Any] = {}
    try:
        sample = await client.get(f"/v1/customers/{random.Random(1).choice(scored)}")
        results["profile_has_scores"] = sample.status_code == 200 and sample.json().get("scores") is not None
        for name, path_of in endpoints.items():
            await endpoint(name, path_of)(random.Random(0))  # warm-up
            figure = await closed_loop(endpoint(name, path_of), concurrency=concurrency, seconds=seconds)
            figure["response_bytes"] = sizes.get(name)
            results[name] = figure
        floor = results["healthz"]["latency_ms"]["p50"]
        for name, figure in results.items():
            if not isinstance(figure, dict) or name == "healthz":
                continue
            figure["p50_ratio_to_healthz"] = round(figure["latency_ms"]["p50"] / floor, 1)
            if name in in_process_ms:
                raw = sum(figures[read]["median_ms"] for read in in_process_ms[name])
                figure["in_process_reads"] = in_process_ms[name]
                figure["p50_ratio_to_in_process_reads"] = round(figure["latency_ms"]["p50"] / raw, 2)
        results["customers_csv_champions"]["rows"] = max(
            0, (await client.get("/v1/analytics/customers.csv?segment=Champions")).content.count(b"\n") - 1)

    finally:
        await client.aclose()
    # What the dashboard asks for on load: the six calls at once, on six connections (as a browser does).
    page = ("stages", "funnel", "cohorts", "rfm", "clv", "transitions")
    browser_like = Pool(url, size=len(page), headers={"authorization": f"Bearer {TOKEN}"})
    await browser_like.open(len(page), stagger_s=0.01)
    try:
        loads = []
        for _ in range(5):
            started = time.perf_counter()
            answers = await asyncio.gather(*(browser_like.get(endpoints[name](None)) for name in page))
            loads.append((time.perf_counter() - started) * 1000)
            assert all(a.status_code == 200 for a in answers)
    finally:
        await browser_like.aclose()
    serial = sum(results[name]["latency_ms"]["p50"] for name in page)
    results["dashboard_api_calls_all_at_once"] = {
        "calls": page, "loads": len(loads), "latency_ms": percentiles(loads, points=(50, 99)),
        "sum_of_p50s_one_by_one_ms": round(serial, 1),
        "p50_ratio_to_sum_one_by_one": round(percentiles(loads, points=(50,))["p50"] / serial, 2)}
    return results


PAINT = """() => {
    const resources = performance.getEntriesByType('resource');
    const api = resources.filter((r) => r.name.includes('/v1/analytics/'));
    return {
        fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime ?? null,
        ready: (window.dashboardTiming || {}).readyMs ?? null,
        apiStart: api.length ? Math.min(...api.map((r) => r.startTime)) : null,
        apiDone: api.length ? Math.max(...api.map((r) => r.responseEnd)) : null,
        api: api.map((r) => [new URL(r.name).pathname, Math.round(r.duration)]),
        transferred: resources.reduce((n, r) => n + r.transferSize, 0)};
}"""


async def _paint(context, url: str) -> dict[str, Any]:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    started = time.perf_counter()
    await page.goto(f"{url}/dashboard#token={TOKEN}")
    # A selector, not a JS predicate: the page's CSP has no 'unsafe-eval'.
    await page.wait_for_selector("body[data-ready='true']", state="attached", timeout=180_000)
    wall = (time.perf_counter() - started) * 1000
    measured = await page.evaluate(PAINT)
    await page.close()

    def ms(key: str) -> float | None:
        return None if measured[key] is None else round(measured[key], 1)

    return {"first_contentful_paint_ms": ms("fcp"), "data_ready_ms": ms("ready"),
            "api_calls_started_ms": ms("apiStart"), "api_answers_done_ms": ms("apiDone"),
            "api_call_durations_ms": dict(measured["api"]), "wall_to_ready_ms": round(wall, 1),
            "bytes_transferred": measured["transferred"], "page_errors": errors}


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"loads": runs}
    for key in ("first_contentful_paint_ms", "api_calls_started_ms", "api_answers_done_ms", "data_ready_ms",
                "wall_to_ready_ms"):
        values = [run[key] for run in runs if run[key] is not None]
        out[f"median_{key}"] = round(statistics.median(values), 1) if values else None
    return out


async def dashboard_paint(url: str, *, loads: int = 3) -> dict[str, Any]:
    """First contentful paint and `data-ready` of GET /dashboard in headless Chromium: cold (a fresh
    context per load: no cache, plotly.js over the wire) and warm (a returning visitor: one context, its
    files cached - they are served immutable), the median of `loads` each. Times are from navigation start."""
    from lifecycle_devstack.clients import ensure_chromium
    from playwright.async_api import async_playwright

    chromium = ensure_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                                   args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            cold = []
            for _ in range(loads):
                context = await browser.new_context()
                cold.append(await _paint(context, url))
                await context.close()
            context = await browser.new_context()
            await _paint(context, url)  # the first visit fills the cache
            warm = [await _paint(context, url) for _ in range(loads)]
            await context.close()
        finally:
            await browser.close()
    return {"cold": _medians(cold), "warm": _medians(warm)}
