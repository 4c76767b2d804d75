"""The campaigns page (messaging's `/campaigns`) in headless Chromium: a shop whose campaign sells, through
messaging's real handlers and delivery worker (real PostgreSQL, aiosmtpd) on a clock the test moves, and the
app served over HTTP. The page shows the campaign's sent / held / suppressed by reason and its lift with the
interval, as the API answers them; without a token it asks for one, and a refused token shows the API's answer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.browser import CHROMIUM_ARGS
from tests.support.campaign_lift import START, TOKEN, Shop, serving, welcome_everyone
from tests.support.in_process import running
from tests.support.messaging import messaging_namespace


@pytest.fixture
def namespace(infra):
    return messaging_namespace(infra)


async def test_the_campaigns_page_shows_counts_by_reason_and_the_lift_with_its_interval(namespace, mail_sink,
                                                                                         chromium, tmp_path):
    from playwright.async_api import async_playwright

    _, port = mail_sink
    shop = Shop(namespace, port, holdout_share=0.5)
    try:
        campaign, groups = await welcome_everyone(shop)
        treated = sorted(p for p, g in groups.items() if g == "treatment")
        held = sorted(p for p, g in groups.items() if g == "holdout")
        shop.clock.now = START + timedelta(days=1)
        await shop.consume([shop.touchpoint(p, "Order Completed", order_id=f"o-{p}", revenue=30)
                            for p in treated[::2] + held[::10]])
        shop.clock.now = START + timedelta(days=8)
        app = shop.api_app(holdout_share=0.5)
        async with running(shop.api_app(holdout_share=0.5)) as client:
            expected = (await client.get(f"/v1/campaigns/{campaign}/lift",
                                         headers={"Authorization": f"Bearer {TOKEN}"})).json()
        async with serving(app) as origin, async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                                       args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                requests: list[str] = []
                page.on("request", lambda request: requests.append(request.url))
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))

                await page.goto(f"{origin}/campaigns")
                await page.locator("#token-form").wait_for(state="visible")
                await page.locator("#token-form input[name=token]").fill("not-a-token")
                await page.locator("#token-form button").click()
                await page.locator("#banner").wait_for(state="visible")
                assert "401" in await page.locator("#banner").inner_text()

                await page.goto(f"{origin}/campaigns#token={TOKEN}")
                row = page.locator(f"tr[data-campaign='{campaign}']")
                await row.wait_for(state="visible")
                assert await row.locator(".sent").inner_text() == str(len(treated))
                assert await row.locator(".suppressed").inner_text() == f"holdout: {len(held)}"
                lift = row.locator(".lift")
                assert "positive" in (await lift.get_attribute("class") or "")
                difference = expected["conversion_difference"]
                text = await lift.inner_text()
                assert f"{100 * difference['estimate']:.1f} pts" in text
                assert f"{100 * difference['interval']['low']:.1f} pts" in text
                assert await lift.locator(".interval .bar").is_visible()
                assert await row.locator(".srm").inner_text() == "ok"
                await page.screenshot(path=str(tmp_path / "campaigns.png"))
                assert not errors, errors
                assert all(url.startswith(origin) for url in requests), requests
            finally:
                await browser.close()
    finally:
        await shop.engine.dispose()
