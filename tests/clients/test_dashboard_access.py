"""The dashboard's doors in headless Chromium: without a token it asks for one and shows the API's refusal; with
`LIFECYCLE_STAGE_ENGINE_CAMPAIGNS_PAGE_URL` set it links to messaging's campaigns page, token and way back
included. (Its figures: test_dashboard.py.)"""

from __future__ import annotations

from tests.support.browser import CHROMIUM_ARGS


async def test_the_dashboard_asks_for_a_token_and_shows_api_errors(clients_stack, chromium):
    """Without a token the page asks for one; a token the API refuses shows the API's answer in the banner."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(clients_stack.url("stage-engine") + "/dashboard")
            form = page.locator("#token-form")
            await form.wait_for(state="visible")
            assert await page.locator("#content").is_hidden()
            await form.locator("input[name=token]").fill("not-a-token")
            await form.locator("button[type=submit]").click()
            await page.wait_for_selector('body[data-ready="error"]', timeout=15_000)
            assert "401" in await page.text_content("#error") and await page.locator("#error").is_visible()
            assert await form.is_visible()  # asked again; the refused token is forgotten
            assert await page.evaluate("sessionStorage.length") == 0
        finally:
            await browser.close()


async def test_the_dashboard_links_to_the_campaigns_page_with_its_token_and_back(clients_stack, chromium):
    """`LIFECYCLE_STAGE_ENGINE_CAMPAIGNS_PAGE_URL` set: the dashboard's "Campaigns" link opens messaging's page
    with the API token in the fragment (it reads the lift API without asking) and a link back."""
    from playwright.async_api import async_playwright

    dashboard = clients_stack.url("stage-engine") + "/dashboard"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{dashboard}#token={clients_stack.api_token}")
            link = page.locator("#campaigns-link")
            await link.wait_for(state="visible")
            await link.click()
            await page.wait_for_url(clients_stack.url("messaging") + "/campaigns*")
            await page.locator("#content").wait_for(state="visible")  # the lift API answered the token
            assert await page.locator("#token-form").is_hidden()
            assert await page.locator("#dashboard-link").get_attribute("href") == dashboard
        finally:
            await browser.close()
