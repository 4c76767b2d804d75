"""The marketing dashboard in headless Chromium, over a small shop's history sent through ingest.

Forty customers over fourteen months arrive from campaigns (page views with `context.campaign`), sign up
and buy - several again and again, one order refunded, one customer's id an HTML payload - through ingest's
`/v1/import`. Once the stage engine has every profile and a full refresh (POST /v1/admin/analytics/fits, admin
token) is done, the page opens at `/dashboard#token=<API token>`: every chart has data, agrees with the API
and shows on screen (the screenshots hold many colours), the fit's warnings are visible, a customer opens
in the drill-down with their stage and history, a segment downloads as CSV, the hostile id is text, and the
page reached nothing but the stage engine. A source filter turns every panel into that source's figures
(as the API answers them with the same filter), and "Refresh figures" asks for a refresh with the admin
token (a wrong one is refused with a clear message) and shows the new figures' time."""

from __future__ import annotations

import io
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import numpy as np
from lifecycle_shared.testing import eventually
from PIL import Image

from tests.support.browser import CHROMIUM_ARGS
from tests.support.pipeline import Pipeline, bearer

CHARTS = ("stage-mix", "funnel", "cohorts", "rfm-grid", "segments", "clv-distribution")
XSS_ID = "<img src=x onerror=alert(1)>"
CAMPAIGNS = ({"source": "google", "medium": "cpc"}, {"source": "facebook", "medium": "social"},
             {"source": "newsletter", "medium": "email"}, {"source": "instagram", "medium": "social"}, None)


# --- the shop ------------------------------------------------------------------------------------------

@dataclass
class Shop:
    events: list[dict] = field(default_factory=list)
    orders: dict[str, int] = field(default_factory=dict)  # customer -> orders that still count
    revenue: dict[str, float] = field(default_factory=dict)

    def add(self, at: datetime, **event) -> None:
        self.events.append({"messageId": f"dash-{uuid.uuid4().hex}", "timestamp": at.isoformat(), **event})

    def order(self, user: str, at: datetime, order_id: str, revenue: float, *, refunded: bool = False) -> None:
        self.add(at, type="track", userId=user, event="Order Completed",
                 properties={"order_id": order_id, "revenue": revenue, "cost": round(revenue * 0.6, 2),
                             "currency": "USD"})
        if refunded:
            self.add(at + timedelta(days=3), type="track", userId=user, event="Order Refunded",
                     properties={"order_id": order_id, "revenue": revenue})
        else:
            self.orders[user] = self.orders.get(user, 0) + 1
            self.revenue[user] = self.revenue.get(user, 0) + revenue


def small_shop(tag: str, now: datetime, seed: int = 7) -> tuple[Shop, list[str]]:
    """40 visitors over ~14 months: most sign up, about two thirds of those buy, many again and again (the
    more often, the more per order: frequency and spend correlate), one order refunded; and one customer
    whose id is markup. Returns the shop and the ids of the customers who identified themselves."""
    rng, shop, customers = random.Random(seed), Shop(), []
    for index in range(40):
        user, anonymous = f"{tag}-c{index:02d}", f"{tag}-anon-{index:02d}"
        first = now - timedelta(days=rng.uniform(10, 420))
        campaign = CAMPAIGNS[index % len(CAMPAIGNS)]
        context = {"campaign": {**campaign, "name": "spring"}} if campaign else {}
        shop.add(first, type="page", anonymousId=anonymous, name="Home", context=context,
                 properties={"path": "/", "url": "https://shop.example/"})
        if index % 8 == 7:
            continue  # a visitor who never signs up
        signed_up = first + timedelta(hours=rng.uniform(1, 48))
        shop.add(signed_up, type="identify", userId=user, anonymousId=anonymous,
                 traits={"email": f"{user}@example.com"})
        shop.add(signed_up, type="track", userId=user, event="Signed Up", properties={"method": "email"})
        customers.append(user)
        if index % 3 == 2:
            continue  # signed up, never bought
        repeats = min(rng.choice((0, 0, 1, 2, 3, 5)), int((now - signed_up).days / 65))
        at = signed_up + timedelta(days=rng.uniform(1, 10))
        for number in range(repeats + 1):
            if at >= now - timedelta(hours=1):
                break
            revenue = round(25 + 18 * repeats + rng.uniform(0, 15), 2)
            shop.order(user, at, f"{user}-o{number}", revenue, refunded=index == 4 and number == 1)
            at += timedelta(days=rng.uniform(15, 60))
    hostile_first = now - timedelta(days=200)
    shop.add(hostile_first, type="identify", userId=XSS_ID, traits={"email": "hostile@example.com"})
    for number, days in enumerate((190, 140, 90, 40)):
        shop.order(XSS_ID, now - timedelta(days=days), f"{tag}-hostile-o{number}", 92.0)
    customers.append(XSS_ID)
    shop.events.sort(key=lambda event: event["timestamp"])
    return shop, customers


async def import_shop(stack: Pipeline, shop: Shop) -> None:
    async with stack.client() as client:
        for start in range(0, len(shop.events), 200):
            response = await client.post(stack.url("ingest") + "/v1/import", auth=(stack.write_key, ""),
                                         json={"batch": shop.events[start:start + 200]})
            assert response.status_code == 200, response.text
            assert not response.json().get("rejected"), response.json()


async def wait_for_profiles(stack: Pipeline, shop: Shop, customers: list[str]) -> None:
    async with stack.client() as client:
        async def all_there():
            for customer in customers:
                profile = await stack.get(client, "stage-engine", f"/v1/customers/{quote(customer, safe='')}")
                if profile is None or profile["orders"] != shop.orders.get(customer, 0):
                    return None
            return True

        await eventually(all_there, timeout_s=90, interval_s=0.5, what="every customer's profile and orders")


async def refresh_scores(stack: Pipeline) -> dict:
    """POST /v1/admin/analytics/fits {} with the admin token, then poll until the refresh is done."""
    url = stack.url("stage-engine") + "/v1/analytics/fits"
    async with stack.client() as client:
        response = await client.post(stack.url("stage-engine") + "/v1/admin/analytics/fits", json={},
                                     headers=bearer(stack.admin_token))
        assert response.status_code == 202, response.text

        async def done():
            fit = (await client.get(f"{url}/{response.json()['id']}", headers=bearer(stack.api_token))).json()
            assert fit["status"] != "failed", fit
            return fit if fit["status"] == "done" else None

        return await eventually(done, timeout_s=120, interval_s=0.5, what="the analytics refresh")


async def read_api(stack: Pipeline, path: str):
    async with stack.client() as client:
        found = await stack.get(client, "stage-engine", path)
    assert found is not None, path
    return found


# --- what the page shows -------------------------------------------------------------------------------

TRACES = """(ids) => Object.fromEntries(ids.map((id) => [id, (document.getElementById(id).data || []).map(
  (t) => ({type: t.type, name: t.name || null, x: t.x || null, y: t.y || null, z: t.z || null,
           text: t.text || null}))]))"""
NOTES = """(ids) => ids.flatMap((id) => ((document.getElementById(id).layout || {}).annotations || []).map(
  (a) => `${id}: ${a.text}`))"""
ADMIN_KEY = "lifecycle-dashboard-admin-token"


def total(values) -> float:
    """The sum of a trace's numbers, nested (heatmap rows) or flat; blanks (null) count nothing."""
    return sum(total(v) if isinstance(v, list) else (v or 0) for v in values or [])


def assert_charts_hold_the_data(traces: dict[str, list[dict]], clv: dict) -> None:
    for chart in CHARTS:
        assert traces[chart], f"{chart}: no trace"
        assert any(total(t["z"] if t["type"] == "heatmap" else t["y"]) > 0 for t in traces[chart]), (chart, traces)
    mix = traces["stage-mix"]
    assert {t["type"] for t in mix} == {"scatter"} and {"purchase", "retention"} <= {t["name"] for t in mix}, mix
    entered = next(t for t in traces["funnel"] if t["name"] == "entered")
    assert total(entered["y"]) > 0 and len(entered["x"]) == 5, entered
    cohorts = traces["cohorts"][0]
    assert cohorts["type"] == "heatmap" and any(total(row[1:]) > 0 for row in cohorts["z"]), cohorts
    grid = traces["rfm-grid"][0]
    assert len(grid["z"]) == 5 and all(len(row) == 5 for row in grid["z"]), grid
    assert grid["y"] == ["R 5", "R 4", "R 3", "R 2", "R 1"] and grid["x"] == [f"FM {n}" for n in range(1, 6)]
    # The grid, the segments and the CLV histogram each count every scored customer once.
    for chart, figure in (("rfm-grid", grid["z"]), ("segments", traces["segments"][0]["y"]),
                          ("clv-distribution", traces["clv-distribution"][0]["y"])):
        assert total(figure) == clv["customers"], (chart, figure, clv["customers"])


def assert_drawn(png: bytes, what: str) -> None:
    """A screenshot that shows a chart: a fair share of non-white pixels and many distinct colours."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    inked = float((pixels.min(axis=1) < 235).mean())
    colours = len(np.unique(pixels, axis=0))
    assert inked > 0.04 and colours > 40, f"{what}: {inked:.1%} non-white pixels, {colours} colours"


async def test_the_dashboard_draws_the_shop(clients_stack, chromium, tmp_path):
    from playwright.async_api import async_playwright

    stack, origin = clients_stack, clients_stack.url("stage-engine")
    shop, customers = small_shop(f"dash{uuid.uuid4().hex[:6]}", datetime.now(UTC))
    await import_shop(stack, shop)
    await wait_for_profiles(stack, shop, customers)
    fit = await refresh_scores(stack)
    assert fit["result"]["scored_customers"] >= len(shop.orders), fit
    # The shop was made so: frequency and spend correlate, and the refresh says so.
    assert any("correlated" in problem for problem in fit["result"]["problems"]), fit["result"]
    clv = await read_api(stack, "/v1/analytics/clv?top=20")
    assert clv["fit"] == fit["result"]  # the figures come from the refresh just asked for
    problems = clv["fit"]["problems"]
    hostile = f"/v1/customers/{quote(XSS_ID, safe='')}"
    profile, history = await read_api(stack, hostile), await read_api(stack, hostile + "/transitions")

    requests, dialogs, errors = [], [], []

    async def on_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("dialog", on_dialog)
            page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            opened = time.monotonic()
            await page.goto(f"{origin}/dashboard#token={stack.api_token}")
            await page.wait_for_selector('body[data-ready="true"], body[data-ready="error"]', timeout=60_000)
            assert await page.get_attribute("body", "data-ready") == "true", await page.text_content("#error")
            seconds, timing = time.monotonic() - opened, await page.evaluate("window.dashboardTiming")
            print(f"dashboard ready in {seconds:.2f}s (readyMs {timing['readyMs']:.0f})")

            # The token left the address for the tab's session storage.
            assert page.url == f"{origin}/dashboard"
            assert await page.evaluate("Object.values(sessionStorage)") == [stack.api_token]

            traces = await page.evaluate(TRACES, list(CHARTS))
            assert_charts_hold_the_data(traces, clv)
            assert await page.evaluate(NOTES, list(CHARTS)) == []  # no "No data" over any chart
            funnel_text = next(t for t in traces["funnel"] if t["name"] == "converted")["text"]
            assert funnel_text[-1] == "" and any("convert" in text for text in funnel_text[:-1]), funnel_text
            assert await page.text_content("#fig-buyers") == f"{clv['customers']:,}"
            assert await page.text_content("#fig-clv") == f"${clv['total']:,.2f}" and clv["currency"] == "USD"
            assert await page.text_content("#fig-scored") == scored_time(clv["scored_at"])
            assert "one-time buyer counts as alive" in await page.text_content("#p-alive-note")
            shown = await page.locator("#fit-problems li").all_text_contents()
            assert [text.removeprefix("⚠ ") for text in shown] == problems and problems, clv["fit"]
            assert all([await item.is_visible() for item in await page.locator("#fit-problems li").all()])
            assert await page.locator("#top-customers tbody tr").count() == len(clv["top"])
            assert await page.locator("#recent-transitions tbody tr").count() > 0
            assert await page.locator("tbody tr.empty").count() == 0
            overdue = [c for c in clv["top"] if c["next_order_expected_at"]
                       and datetime.fromisoformat(c["next_order_expected_at"]) < datetime.now(UTC)]
            assert await page.locator("#top-customers .overdue").count() == len(overdue) > 0

            await page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
            for chart in CHARTS:
                assert_drawn(await page.locator(f"#{chart}").screenshot(path=tmp_path / f"{chart}.png"), chart)

            # The hostile id is text in the table; opened, the drill-down shows its stage and history.
            await page.locator("#top-customers tbody button", has_text=XSS_ID).click()
            await page.wait_for_selector('#customer[data-state="loaded"]', timeout=15_000)
            assert await page.text_content("#customer-title") == XSS_ID
            details = await page.locator("#customer-profile dd").all_text_contents()
            assert details[0].startswith(profile["stage"].replace("_", " ")), details
            assert f"{profile['scores']['segment']} (R" in " ".join(details), details
            steps = await page.locator("#customer-history li").all_text_contents()
            assert len(steps) == len(history) and len(history) >= 2, (steps, history)
            for step, transition in zip(steps, history, strict=True):
                assert transition["to_stage"].replace("_", " ") in step, (step, transition)
            await page.locator("#customer").screenshot(path=tmp_path / "customer.png")

            # A segment as CSV: fetched with the token, saved from a Blob URL.
            segment = next(name for name, n in (await read_api(stack, "/v1/analytics/rfm"))["segments"].items() if n)
            async with page.expect_download() as saving:
                await page.locator("#segment-downloads button", has_text=f"{segment} (").click()
            saved = (await saving.value).path
            rows = (await saved()).read_text().splitlines()
            assert rows[0].startswith("customer_id,email,stage,segment"), rows[:2]

            await assert_a_source_filter_changes_every_panel(page, stack, clv, tmp_path)
            await assert_the_refresh_button_refreshes_with_the_admin_token(page, stack)

            assert dialogs == [] and await page.evaluate("document.images.length") == 0, dialogs
            # The one refused admin token: Chromium logs the 401 answer as a console error.
            refused = [e for e in errors if "status of 401" in e]
            assert len(refused) == 1 and [e for e in errors if e not in refused] == [], errors
        finally:
            await browser.close()

    strays = [url for url in requests if not url.startswith(origin + "/") and not url.startswith(("data:", "blob:"))]
    assert strays == [], f"the dashboard reached beyond the stage engine: {strays}"
    assert not [url for url in requests if stack.api_token in url], "the token went into a URL"
    assert not [url for url in requests if stack.admin_token in url], "the admin token went into a URL"
    assert f"{origin}/dashboard/static/plotly.min.js" in {url.split("?")[0] for url in requests}


def scored_time(at: str) -> str:
    """The page's "Figures computed": the refresh's time, to the minute, in UTC."""
    return datetime.fromisoformat(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def apply_filters(page, **values: str) -> None:
    for name, value in values.items():
        await page.locator(f"#filters input[name={name}]").fill(value)
    await page.locator("#filters button[type=submit]").click()
    await page.wait_for_selector('body[data-ready="true"], body[data-ready="error"]', timeout=60_000)
    assert await page.get_attribute("body", "data-ready") == "true", await page.text_content("#error")


async def table_column(page, table: str, column: int) -> list[str]:
    return await page.locator(f"#{table} tbody tr td:nth-child({column})").all_text_contents()


async def assert_a_source_filter_changes_every_panel(page, stack: Pipeline, everyone: dict, tmp_path) -> None:
    """With Source "google", every panel shows what the API answers for google's customers, which differs
    from the whole shop's: headline figures, segments, RFM grid, CLV, top customers, recent moves, stage mix,
    funnel, cohorts and the CSV downloads."""
    await page.locator("#customer-close").click()  # the drill-down covers the filters
    before = await page.evaluate(TRACES, list(CHARTS))
    headline = [await page.text_content(f"#fig-{name}") for name in ("customers", "buyers", "clv")]
    moves_before = await table_column(page, "recent-transitions", 2)
    await apply_filters(page, source="google")
    after = await page.evaluate(TRACES, list(CHARTS))
    google = "source=google"
    stages = await read_api(stack, f"/v1/analytics/stages?{google}&period=month")
    funnel = await read_api(stack, f"/v1/analytics/funnel?{google}")
    cohorts = await read_api(stack, f"/v1/analytics/cohorts?{google}")
    rfm = await read_api(stack, f"/v1/analytics/rfm?{google}")
    clv = await read_api(stack, f"/v1/analytics/clv?{google}&top=20")
    moves = await read_api(stack, f"/v1/analytics/transitions?{google}&limit=50")
    assert 0 < clv["customers"] < everyone["customers"], clv

    shown = [await page.text_content(f"#fig-{name}") for name in ("customers", "buyers", "clv")]
    assert shown == [f"{sum(stages['current'].values()):,}", f"{clv['customers']:,}", f"${clv['total']:,.2f}"]
    assert shown != headline
    segments = after["segments"][0]
    assert segments["x"] == list(rfm["segments"]) and segments["y"] == list(rfm["segments"].values())
    assert total(after["rfm-grid"][0]["z"]) == clv["customers"] == total(segments["y"])
    assert after["clv-distribution"][0]["y"] == [b["customers"] for b in clv["distribution"]]
    assert await table_column(page, "top-customers", 1) == [c["customer_id"] for c in clv["top"]]
    assert len(clv["top"]) < len(everyone["top"])
    assert [m["customer_id"] for m in moves] != moves_before

    async def moves_agree() -> bool:
        """The page's recent moves are the API's. A customer's at-risk or lapsed moment falls due at any minute
        (the shop's history ends now, on the wall clock), so a sweep between the page's read and the API's
        adds a move to one side only: read both again."""
        answer = await read_api(stack, f"/v1/analytics/transitions?{google}&limit=50")
        if await table_column(page, "recent-transitions", 2) == [m["customer_id"] for m in answer]:
            return True
        await apply_filters(page, source="google")
        return False

    await eventually(moves_agree, timeout_s=60, interval_s=0.5, what="the page's recent moves to be the API's")
    mix = {t["name"]: t["y"] for t in after["stage-mix"]}
    assert mix == {stage.replace("_", " "): [p["customers"].get(stage, 0) for p in stages["series"]]
                   for stage in {s for p in stages["series"] for s in p["customers"]}}
    entered = next(t for t in after["funnel"] if t["name"] == "entered")["y"]
    assert entered == [s["entered"] for s in funnel["stages"]]
    assert after["cohorts"][0]["y"] == [f"{c['month']} ({c['size']})" for c in cohorts]
    for chart in ("stage-mix", "funnel", "cohorts", "rfm-grid", "segments", "clv-distribution"):
        assert after[chart] != before[chart], f"{chart}: the same figures with the filter"
    await page.screenshot(path=tmp_path / "dashboard-google.png", full_page=True)

    # A segment's CSV holds that segment's customers of the source only.
    segment = next(name for name, n in rfm["segments"].items() if n)
    async with page.expect_download() as saving:
        await page.locator("#segment-downloads button", has_text=f"{segment} (").click()
    rows = (await (await saving.value).path()).read_text().splitlines()
    assert len(rows) - 1 == rfm["segments"][segment] < everyone["customers"], rows

    # Nothing has the source "nobody": the panels say so, as filtered.
    await apply_filters(page, source="nobody")
    notes = await page.evaluate(NOTES, list(CHARTS))
    assert len(notes) == len(CHARTS) and all(n.endswith("No data for these filters") for n in notes), notes
    await apply_filters(page, source="")


async def assert_the_refresh_button_refreshes_with_the_admin_token(page, stack: Pipeline) -> None:
    """A wrong admin token: a clear message, the form again, nothing kept; the right one: a refresh, waited for,
    whose time the page then shows."""
    form = page.locator("#admin-form")
    await page.locator("#refresh").click()
    await form.wait_for(state="visible")
    await form.locator("input[name=token]").fill("not-the-admin-token")
    await form.locator("button[type=submit]").click()
    await page.wait_for_selector('body[data-refresh="error"]', timeout=15_000)
    message = await page.text_content("#refresh-status")
    assert "401" in message and "admin token" in message, message
    assert await form.is_visible() and await page.evaluate(f"sessionStorage.getItem('{ADMIN_KEY}')") is None
    assert await page.get_attribute("body", "data-ready") == "true"  # the API token is kept: the page stays

    await form.locator("input[name=token]").fill(stack.admin_token)
    await form.locator("button[type=submit]").click()
    await page.wait_for_selector('body[data-refresh="done"]', timeout=120_000)
    await page.wait_for_selector('body[data-ready="true"]', timeout=60_000)
    newest = next(f for f in await read_api(stack, "/v1/analytics/fits") if f["calibration_end"] is None
                  and f["status"] == "done")
    assert "Figures refreshed" in await page.text_content("#refresh-status")
    assert await page.text_content("#fig-scored") == scored_time(newest["finished_at"])
    assert await page.evaluate(f"sessionStorage.getItem('{ADMIN_KEY}')") == stack.admin_token
