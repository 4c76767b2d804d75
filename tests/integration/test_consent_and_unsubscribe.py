"""Consent and one-click unsubscribe, from the queued message to the mailbox and back: messaging's app
in-process (routes only: role `api`) with the delivery worker driven by hand, on a clock the test holds,
against real PostgreSQL and a real SMTP server (aiosmtpd). The sent email is parsed with Python's `email`
package; its List-Unsubscribe link is followed as a mail client (one POST) and as a person (GET, then the
page's button); after it, marketing to that address is suppressed with reason `consent` while the order
thank-you (transactional) still arrives. Bounces, complaints and an `Unsubscribed` touchpoint block
marketing too."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db import consent
from lifecycle_messaging.db.models import messages
from lifecycle_messaging.delivery import deliver_once, links_of
from lifecycle_messaging.handlers import routes
from lifecycle_messaging.handlers.stage_changed import handle_stage_changed
from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import STAGE_CHANGED_TYPE, CloudEvent, StageChangedData, TouchpointData
from lifecycle_shared.kafka.registry import Typed
from lifecycle_shared.kafka.runner import ConsumerRunner
from sqlalchemy import select

from tests.support.in_process import kafka_settings, running
from tests.support.kafka_records import record
from tests.support.messaging import rendering

START = datetime(2026, 5, 1, 9, tzinfo=UTC)
TOKEN = "consent-test-api-token-3f8a1c"
LINK = re.compile(r"https://shop\.example/v1/unsubscribe/[A-Za-z0-9_-]+")


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Mailbox:
    received: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if m["To"].addresses[0].addr_spec == address]


@pytest.fixture
def mailbox():
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
async def shop(namespace, mailbox):
    """The app (routes) and what drives the rest by hand: the clock, the settings, the engine."""
    box, port = mailbox
    clock = Clock()
    settings = MessagingSettings(environment="development", role="api", api_tokens=TOKEN,
                                 database_url=namespace.database_url(BY_NAME["messaging"]),
                                 kafka=kafka_settings(namespace), smtp_port=port, public_url="https://shop.example",
                                 unsubscribe_secret="unsubscribe-secret-for-tests-51d2")
    async with running(create_app(settings, clock=clock)) as client:
        engine = create_engine(settings.database_url)
        yield SimpleNamespace(client=client, clock=clock, settings=settings, engine=engine, box=box,
                              runtime=SimpleNamespace(engine=engine), freshness=Freshness(clock, settings.freshness))
        await engine.dispose()


async def transition(shop, customer: str, from_stage: str | None, to_stage: str, *, reason: str = "r") -> str:
    """A stage change of `customer` (address `<customer>@example.com`) at the clock's now, queued as the
    handler does, with its unsubscribe link; the id of the message it sends at once."""
    data = StageChangedData(customer_id=customer, user_id=customer, from_stage=from_stage, to_stage=to_stage,
                            reason=reason, rule_version="v", cause_event_ids=["c"], event_time=shop.clock.now,
                            processed_at=shop.clock.now, traits={"email": f"{customer}@example.com"})
    event = CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=shop.clock.now,
                       subject=customer, data=data.model_dump(mode="json"))
    async with shop.engine.begin() as conn:
        await handle_stage_changed(conn, [Typed(event, data)], freshness=shop.freshness,
                                   rendering=rendering("Mộc", links=links_of(shop.settings, shop.freshness)))
        row = (await conn.execute(select(messages.c.id).where(  # the message sent at once, not a delayed one's
            messages.c.cause_event_id == event.id, messages.c.not_before.is_(None)))).one()
    return str(row.id)


async def deliver(shop) -> None:
    while await deliver_once(shop.runtime, shop.settings, shop.freshness):
        pass


async def outcome(shop, message_id: str) -> tuple[str, str | None]:
    async with shop.engine.connect() as conn:
        row = (await conn.execute(select(messages.c.status, messages.c.suppressed_reason)
                                  .where(messages.c.id == message_id))).one()
    return row.status, row.suppressed_reason


async def consent_of(shop, address: str) -> str | None:
    async with shop.engine.connect() as conn:
        return (await consent.states_of(conn, [address], channel="email", purpose="marketing")).get(address)


def customer() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


async def test_one_click_unsubscribe_stops_marketing_but_not_the_order_thank_you(shop):
    ann = customer()
    address = f"{ann}@example.com"
    welcome = await transition(shop, ann, None, "awareness")
    await deliver(shop)
    assert await outcome(shop, welcome) == ("sent", None)
    [email] = shop.box.to(address)
    # RFC 8058: an HTTPS link in List-Unsubscribe, and the one-click POST announced.
    header = str(email["List-Unsubscribe"])
    assert header.startswith("<https://shop.example/v1/unsubscribe/") and header.endswith(">")
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = header[1:-1]
    # The same link in the text and the HTML parts (the template's `unsubscribe_url`).
    assert LINK.findall(email.get_body(("plain",)).get_content()) == [url]
    assert url in email.get_body(("html",)).get_content()
    token = url.rsplit("/", 1)[1]
    assert ann not in token and "example" not in token  # nothing personal in the clear

    path = url.removeprefix("https://shop.example")
    page = await shop.client.get(path)  # a person, or a link scanner: nothing changes
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and address not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert await consent_of(shop, address) is None

    shop.clock.now += timedelta(minutes=5)
    clicked = await shop.client.post(path, content=b"List-Unsubscribe=One-Click",
                                     headers={"content-type": "application/x-www-form-urlencoded"})
    assert clicked.status_code == 200, clicked.text
    assert address not in clicked.text
    assert await consent_of(shop, address) == "unsubscribed"
    again = await shop.client.post(path, content=b"List-Unsubscribe=One-Click")
    assert again.status_code == 200  # a second click (or a client retrying) is no error
    async with shop.engine.connect() as conn:
        log = await consent.history(conn, address, channel="email", purpose="marketing")
    assert [(c["state"], c["source"], c["reference"], c["at"]) for c in log] == [
        ("unsubscribed", "link", welcome, shop.clock.now)]  # once, from the link, on the service's clock

    # The first order: the thank-you is transactional and still arrives - with no unsubscribe header.
    shop.clock.now += timedelta(hours=1)
    thanks = await transition(shop, ann, "awareness", "purchase")
    await deliver(shop)
    assert await outcome(shop, thanks) == ("sent", None)
    thank_you = shop.box.to(address)[-1]
    assert thank_you["List-Unsubscribe"] is None and not LINK.search(thank_you.get_body(("plain",)).get_content())
    # A repeat order: the retention offer is marketing, suppressed at the claim, counted as consent.
    shop.clock.now += timedelta(hours=1)
    offer = await transition(shop, ann, "purchase", "retention")
    await deliver(shop)
    assert await outcome(shop, offer) == ("suppressed", "consent")
    assert len(shop.box.to(address)) == 2
    listed = await shop.client.get(f"/v1/customers/{ann}/messages", headers={"authorization": f"Bearer {TOKEN}"})
    assert sorted((m["template"], m["status"], m["suppressed_reason"]) for m in listed.json()) == sorted([
        ("welcome", "sent", None), ("thank_you_feedback", "sent", None), ("retention_offer", "suppressed", "consent"),
        ("feedback_request", "suppressed", "superseded")])  # its three days not over: the repeat order came first


async def test_the_confirmation_page_button_unsubscribes(shop):
    """What a person does: GET shows the page, its form posts to the same link (as the browser would send it)."""
    bo = customer()
    await transition(shop, bo, None, "awareness")
    await deliver(shop)
    path = str(shop.box.to(f"{bo}@example.com")[0]["List-Unsubscribe"])[1:-1].removeprefix("https://shop.example")
    page = await shop.client.get(path)
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    posted = await shop.client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert posted.status_code == 200 and "no longer receive marketing email" in posted.text
    assert await consent_of(shop, f"{bo}@example.com") == "unsubscribed"


async def test_a_tampered_an_expired_or_a_foreign_link_is_refused_and_unsubscribes_nobody(shop):
    cy = customer()
    await transition(shop, cy, None, "awareness")
    await deliver(shop)
    path = str(shop.box.to(f"{cy}@example.com")[0]["List-Unsubscribe"])[1:-1].removeprefix("https://shop.example")
    token = path.rsplit("/", 1)[1]
    tampered = path[:-len(token)] + token[:30] + ("A" if token[30] != "A" else "B") + token[31:]
    for method in ("GET", "POST"):
        refused = await shop.client.request(method, tampered)
        assert refused.status_code == 400 and refused.json()["code"] == "token_invalid", refused.text
        malformed = await shop.client.request(method, "/v1/unsubscribe/not-a-token")
        assert malformed.status_code == 400 and malformed.json()["code"] == "token_malformed"
    shop.clock.now += timedelta(days=60, seconds=1)  # past the link's 60 days
    for method in ("GET", "POST"):
        expired = await shop.client.request(method, path)
        assert expired.status_code == 410 and expired.json()["code"] == "token_expired", expired.text
        assert "expired" in expired.json()["message"]
    assert await consent_of(shop, f"{cy}@example.com") is None
    # A genuine link to a message that does not exist (a signed id of nothing): 404, never a 500.
    unknown = links_of(shop.settings, shop.freshness).for_message(str(uuid.uuid4()))
    missing = await shop.client.post(unknown.removeprefix("https://shop.example"))
    assert missing.status_code == 404


async def test_bounces_and_complaints_block_marketing_until_an_operator_lifts_them(shop):
    bounced, complained, soft = customer(), customer(), customer()
    auth = {"authorization": f"Bearer {TOKEN}"}
    webhook = [{"type": "bounce", "email": f"{bounced}@example.com", "message_id": "p-1",
                "at": "2026-05-01T09:00:00Z"},
               {"type": "complaint", "email": f"{complained}@EXAMPLE.com"},  # the domain in another case
               {"type": "bounce", "bounce_type": "soft", "email": f"{soft}@example.com"}]
    assert (await shop.client.post("/v1/providers/events", json=webhook)).status_code == 401
    answer = await shop.client.post("/v1/providers/events", json=webhook, headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 2, "unchanged": 0, "ignored": 1}
    bad = await shop.client.post("/v1/providers/events", json=[{"type": "bounce", "email": "nope"}], headers=auth)
    assert bad.status_code == 400 and "0.email" in bad.json()["message"]
    nul = await shop.client.post("/v1/providers/events", headers=auth,
                                 json=[{"type": "complaint", "email": "x@example.com", "message_id": "a\x00"}])
    assert nul.status_code == 400  # never a 500 from the database

    sent = {who: await transition(shop, who, None, "awareness") for who in (bounced, complained, soft)}
    await deliver(shop)
    assert {who: await outcome(shop, m) for who, m in sent.items()} == {
        bounced: ("suppressed", "consent"), complained: ("suppressed", "consent"), soft: ("sent", None)}
    assert await consent_of(shop, f"{complained}@example.com") == "complained"

    # A Subscribed touchpoint does not lift a bounce; an operator does (PUT, by customer id).
    lifted = await shop.client.put("/v1/consent/email/marketing", headers=auth,
                                   json={"customer_id": bounced, "state": "subscribed"})
    assert lifted.status_code == 200, lifted.text
    assert lifted.json() == {"state": "subscribed", "previous_state": "bounced", "changed": True}
    shown = (await shop.client.get(f"/v1/consent/email/marketing/customers/{bounced}", headers=auth)).json()
    assert (shown["email"], shown["state"]) == (f"{bounced}@example.com", "subscribed")
    assert [(c["previous_state"], c["state"], c["source"], c["reference"]) for c in shown["changes"]] == [
        (None, "bounced", "provider", "p-1"), ("bounced", "subscribed", "api", None)]
    assert (await shop.client.get(f"/v1/consent/email/marketing/customers/{bounced}")).status_code == 401
    assert (await shop.client.get(f"/v1/consent/email/marketing/customers/{customer()}", headers=auth)
            ).status_code == 404
    shop.clock.now += timedelta(minutes=1)
    later = await transition(shop, bounced, "awareness", "consideration")
    await deliver(shop)
    assert await outcome(shop, later) == ("sent", None)


async def test_the_consent_api_answers_every_problem_with_a_4xx(shop):
    auth = {"authorization": f"Bearer {TOKEN}"}
    put = shop.client.put
    assert (await put("/v1/consent/email/marketing", json={"email": "a@example.com", "state": "blocked"})
            ).status_code == 401
    for body in ({"state": "blocked"}, {"email": "a@example.com", "customer_id": "x", "state": "blocked"},
                 {"email": "a@example.com", "state": "maybe"}, {"email": "not an address", "state": "blocked"},
                 {"customer_id": "a\x00b", "state": "blocked"}, {"email": "a\x00@example.com", "state": "blocked"}):
        answer = await put("/v1/consent/email/marketing", json=body, headers=auth)
        assert answer.status_code == 400, (body, answer.text)
    assert (await put("/v1/consent/sms/marketing", json={"email": "a@example.com", "state": "blocked"},
                      headers=auth)).status_code == 400
    unknown = await put("/v1/consent/email/marketing", json={"customer_id": customer(), "state": "blocked"},
                        headers=auth)
    assert unknown.status_code == 404
    address = f"{customer()}@example.com"
    first = await put("/v1/consent/email/marketing", json={"email": address, "state": "blocked"}, headers=auth)
    second = await put("/v1/consent/email/marketing", json={"email": address, "state": "blocked"}, headers=auth)
    assert (first.json()["changed"], second.json()["changed"]) == (True, False)


async def test_an_unsubscribed_touchpoint_blocks_marketing_and_a_trait_cannot_undo_it(shop):
    dee = customer()
    address = f"{dee}@example.com"
    await transition(shop, dee, None, "awareness")  # messaging learns the address
    await deliver(shop)
    runner = ConsumerRunner(name="consent-test", consumer=None, producer=None, engine=shop.engine,
                            route=routes(brand="Mộc", freshness=shop.freshness))

    def touchpoint(event_type: str, **fields) -> bytes:
        data = TouchpointData(userId=dee, messageId=str(uuid.uuid4()), timestamp=shop.clock.now,
                              receivedAt=shop.clock.now, verified=True, **fields)
        return CloudEvent(id=f"src/{data.messageId}", source="/ingest", type=event_type, time=shop.clock.now,
                          subject=dee, data=data.model_dump(mode="json")).to_bytes()

    await runner.process([record("touchpoints", 0, touchpoint("touchpoint.unsubscribed", type="track",
                                                                  event="Unsubscribed"), key=dee.encode())])
    assert await consent_of(shop, address) == "unsubscribed"
    # An identify whose traits still say yes (a CRM behind the times) does not undo the no.
    await runner.process([record("touchpoints", 1, touchpoint("touchpoint.identify", type="identify",
                                                                  traits={"email": address, "emailOptIn": True}),
                                 key=dee.encode())])
    assert await consent_of(shop, address) == "unsubscribed"
    shop.clock.now += timedelta(minutes=1)
    nudge = await transition(shop, dee, "awareness", "consideration")
    await deliver(shop)
    assert await outcome(shop, nudge) == ("suppressed", "consent")
    # A verified Subscribed event does: they said yes again themselves.
    await runner.process([record("touchpoints", 2, touchpoint("touchpoint.subscribed", type="track",
                                                                  event="Subscribed"), key=dee.encode())])
    assert await consent_of(shop, address) == "subscribed"


async def test_a_shop_requiring_opt_in_sends_marketing_only_after_a_yes(shop):
    strict = shop.settings.model_copy(update={"require_opt_in": True})
    eve = customer()
    welcome = await transition(shop, eve, None, "awareness")
    while await deliver_once(shop.runtime, strict, shop.freshness):
        pass
    assert await outcome(shop, welcome) == ("suppressed", "consent")
    shop.clock.now += timedelta(minutes=1)
    thanks = await transition(shop, eve, "awareness", "purchase")
    while await deliver_once(shop.runtime, strict, shop.freshness):
        pass
    assert await outcome(shop, thanks) == ("sent", None)
