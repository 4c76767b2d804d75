"""The unsubscribe link followed by a person in headless Chromium (Playwright): the link from a marketing
email's List-Unsubscribe header opens the confirmation page, which changes nothing; its button posts the
one-click form (allowed by the page's Content-Security-Policy) and the address is unsubscribed. Messaging
serves over real HTTP (uvicorn, in-process, routes only) on a clock the test holds, against real
PostgreSQL, with a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db import consent
from lifecycle_messaging.delivery import deliver_once, links_of
from lifecycle_messaging.handlers.stage_changed import handle_stage_changed
from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import STAGE_CHANGED_TYPE, CloudEvent, StageChangedData
from lifecycle_shared.kafka.registry import Typed
from playwright.async_api import async_playwright

from tests.support.browser import CHROMIUM_ARGS
from tests.support.in_process import kafka_settings
from tests.support.mail_sink import MailSink
from tests.support.messaging import messaging_namespace, rendering

NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def namespace(infra):
    return messaging_namespace(infra)


async def test_a_person_unsubscribes_in_a_browser_with_the_link_from_the_email(namespace, chromium: Path):
    sink, smtp_port, http_port = MailSink(), free_port(), free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    settings = MessagingSettings(environment="development", role="api",
                                 database_url=namespace.database_url(BY_NAME["messaging"]),
                                 kafka=kafka_settings(namespace), smtp_port=smtp_port,
                                 public_url=f"http://127.0.0.1:{http_port}",
                                 unsubscribe_secret="browser-unsubscribe-secret-7a2c9e")
    freshness = Freshness(clock=lambda: NOW, window=settings.freshness)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, clock=lambda: NOW), host="127.0.0.1", port=http_port,
                                           log_level="warning"))
    serving = asyncio.create_task(server.serve())
    engine = create_engine(settings.database_url)
    try:
        customer = f"web-{uuid.uuid4().hex[:8]}"
        address = f"{customer}@example.com"
        data = StageChangedData(customer_id=customer, user_id=customer, from_stage=None, to_stage="awareness",
                                reason="first_touch", rule_version="v", cause_event_ids=["c"], event_time=NOW,
                                processed_at=NOW, traits={"email": address})
        event = CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=NOW,
                           subject=customer, data=data.model_dump(mode="json"))
        async with engine.begin() as conn:
            await handle_stage_changed(conn, [Typed(event, data)], freshness=freshness,
                                       rendering=rendering(links=links_of(settings, freshness)))
        runtime = type("Runtime", (), {"engine": engine})()
        while await deliver_once(runtime, settings, freshness):
            pass
        [sent] = sink.to(address)
        email = message_from_bytes(sent.as_bytes(), policy=policy.default)
        link = str(email["List-Unsubscribe"]).strip("<>")
        assert link.startswith(f"http://127.0.0.1:{http_port}/v1/unsubscribe/")
        for _ in range(400):  # uvicorn is listening within 20 s, or the test says so
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "messaging did not start serving"

        async def state() -> str | None:
            async with engine.connect() as conn:
                return (await consent.states_of(conn, [address], channel="email", purpose="marketing")).get(address)

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True,
                                                       args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context()).new_page()
                opened = await page.goto(link)
                assert opened is not None and opened.status == 200
                assert await page.title() == "Unsubscribe"
                assert await state() is None  # opening the link changed nothing
                async with page.expect_navigation():
                    await page.get_by_role("button", name="Unsubscribe").click()
                assert await page.title() == "Unsubscribed"
                assert "no longer receive marketing email" in await page.content()
            finally:
                await browser.close()
        assert await state() == "unsubscribed"
    finally:
        server.should_exit = True
        await serving
        await engine.dispose()
        smtp.stop()
