"""Messaging's part of a GDPR erasure (docs/erasure.md), on real PostgreSQL through the real runner and a real
SMTP server: a customer with an anonymousId merged into a userId, an email and a phone, consent, an order and a
welcome sent. The erasure event, carrying only keyed hashes, leaves none of their ids, email or phone in any
text, json, jsonb, array or bytea column of any table (found before: the positive control); the send statistics
and the lift's orders stay; a redelivery keeps the first report; the erased address is never mailed again, even
under a new id - until a new explicit opt-in made after the erasure lifts its suppression marker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.domain.erasure import address_marker
from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_shared.db import create_engine
from lifecycle_shared.erasure import id_hashes
from lifecycle_shared.events import (
    ERASURE_REQUESTED_TYPE,
    IDENTITY_MERGED_TYPE,
    CloudEvent,
    ErasureRequestedData,
    IdentityMergedData,
    TouchpointData,
    touchpoint_type,
)
from sqlalchemy import text

from tests.support.erasure import scan_database
from tests.support.in_process import kafka_settings, running
from tests.support.mail_sink import MailSink
from tests.support.messaging import Clock, Shop, messaging_namespace, stage_event, track_event

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PEPPER = b"erasure-test-pepper"
TOKEN = "erasure-test-api-token-7c1e9b"
# What statistics are made of: messages by campaign, template and status; the lift's orders and revenue.
_STATISTICS = text("SELECT (SELECT jsonb_agg(s ORDER BY s) FROM (SELECT campaign || '/' || template || '/' || status "
                   "|| '/' || count(*) AS s FROM messages GROUP BY campaign, template, status) AS g), "
                   "(SELECT count(*) FROM orders), (SELECT coalesce(sum(revenue), 0) FROM orders)")


@pytest.fixture(scope="module")
def namespace(infra):
    return messaging_namespace(infra)


@pytest.fixture
async def shop(namespace):
    sink, port = MailSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings = MessagingSettings(environment="development", smtp_port=port, api_tokens=TOKEN,
                                 database_url=namespace.database_url(BY_NAME["messaging"]),
                                 kafka=kafka_settings(namespace), erasure_pepper=PEPPER.decode())
    engine = create_engine(settings.database_url)
    yield Shop(engine, settings, Clock(T0), erasure_pepper=PEPPER), sink
    await engine.dispose()
    controller.stop()


def identify(user: str, anon: str, traits: dict, at: datetime) -> CloudEvent:
    data = TouchpointData(type="identify", anonymousId=anon, userId=user, messageId=str(uuid.uuid4()), traits=traits,
                          timestamp=at, receivedAt=at, verified=True)
    return CloudEvent(id=f"web/{data.messageId}", source="/sources/web", type=touchpoint_type("identify", None),
                      time=at, subject=user, data=data.model_dump(mode="json"))


def merged(absorbed: str, survivor: str, at: datetime) -> CloudEvent:
    data = IdentityMergedData(survivor_id=survivor, absorbed_id=absorbed, absorbed_ids=[absorbed], user_id=survivor,
                              reason="identify", cause_event_ids=["c"], event_time=at, processed_at=at)
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=at,
                      subject=survivor, data=data.model_dump(mode="json"))


def erasure_event(erasure_id: str, hashes: list[str], at: datetime, event_id: str | None = None) -> CloudEvent:
    data = ErasureRequestedData(erasure_id=erasure_id, id_hashes=hashes, requested_at=at)
    return CloudEvent(id=event_id or f"erasure/{erasure_id}", source="/stage-engine", type=ERASURE_REQUESTED_TYPE,
                      time=at, subject=erasure_id, data=data.model_dump(mode="json"))


async def statistics(shop: Shop) -> tuple:
    async with shop.engine.connect() as conn:
        return tuple((await conn.execute(_STATISTICS)).first())


async def test_an_erased_customer_leaves_no_identifier_and_is_never_mailed_again(shop):
    shop, sink = shop
    h = uuid.uuid4().hex[:10]
    anon, user, other = f"anon-{h}", f"user-{h}", f"user-other-{h}"
    email, phone = f"ann.{h}@example.com", f"+4479{h[:8]}"
    traits = {"email": email, "phone": phone, "firstName": "Ann"}
    await shop.consume(identify(user, anon, traits, T0), merged(anon, user, T0),
                       track_event(user, "Subscribed", T0, email=email),
                       track_event(user, "Order Completed", T0 + timedelta(minutes=1), order_id=f"o-{h}", revenue=40),
                       stage_event(user, None, "awareness", T0, traits=traits),
                       stage_event(other, None, "awareness", T0))
    await shop.deliver()
    assert len(sink.to(email)) == 1  # the welcome went out
    needles = [anon, user, email, phone]
    before = await scan_database(shop.engine, needles)
    assert all(before[needle] for needle in needles), before  # the scan looks where they are
    assert {"messages.recipient", "contacts.email", "consents.address"} <= set(before[email]), before[email]
    assert "webhook_deliveries.payload" in before[""] and "latest_transitions.traits" in before[""]
    statistics_before = await statistics(shop)
    assert statistics_before[1] >= 1, statistics_before  # the order is there for the lift

    erasure_id = str(uuid.uuid4())
    hashes = id_hashes(PEPPER, [anon, user])
    await shop.consume(erasure_event(erasure_id, hashes, T0 + timedelta(days=1)))

    after = await scan_database(shop.engine, needles)
    assert {needle: after[needle] for needle in needles} == {needle: [] for needle in needles}
    assert await statistics(shop) == statistics_before  # message counts by status, orders and revenue kept
    assert (await scan_database(shop.engine, [other]))[other]  # someone else is untouched
    async with shop.engine.connect() as conn:
        first = (await conn.execute(text("SELECT counts FROM erasures WHERE erasure_id = :e"),
                                    {"e": erasure_id})).scalar()
    assert first["messages"] >= 1 and first["contacts"] >= 1 and first["erased_addresses"] == 1, first

    # Redelivered under another event id: nothing changes, the first counts stay.
    await shop.consume(erasure_event(erasure_id, hashes, T0 + timedelta(days=2), event_id=f"again/{erasure_id}"))
    async with shop.engine.connect() as conn:
        assert (await conn.execute(text("SELECT counts FROM erasures WHERE erasure_id = :e"),
                                   {"e": erasure_id})).scalar() == first

    # The report, as the stage engine reads it (the read-API token).
    async with running(create_app(shop.settings.model_copy(update={"role": "api"}), clock=shop.clock)) as client:
        auth = {"authorization": f"Bearer {TOKEN}"}
        report = await client.get(f"/v1/erasures/{erasure_id}", headers=auth)
        assert report.status_code == 200 and report.json()["counts"] == first, report.text
        assert (await client.get(f"/v1/erasures/{uuid.uuid4()}", headers=auth)).status_code == 404
        assert (await client.get("/v1/erasures/not-a-uuid", headers=auth)).status_code == 404
        assert (await client.get(f"/v1/erasures/{erasure_id}")).status_code == 401

    # The same address comes back under a new id: its messages are suppressed, nothing is mailed to it.
    again = f"user-again-{h}"
    shop.clock.now = T0 + timedelta(days=3)
    await shop.consume(stage_event(again, None, "awareness", shop.clock.now, traits={"email": email}))
    await shop.deliver()
    assert len(sink.to(email)) == 1
    async with shop.engine.connect() as conn:
        reasons = (await conn.execute(text("SELECT status, suppressed_reason FROM messages WHERE customer_id = :c"),
                                      {"c": again})).all()
    assert reasons and all(tuple(row) == ("suppressed", "erased") for row in reasons), reasons


def unverified(event: CloudEvent) -> CloudEvent:
    """The same touchpoint as a browser's write key would send it: anyone can name anyone."""
    return event.model_copy(update={"data": {**event.data, "verified": False}})


async def sent_to(shop: Shop, sink: MailSink, customer: str, email: str) -> tuple[int, list[tuple]]:
    """A new person with `email` enters awareness (the welcome, marketing): how many mails `email` has had since,
    and the welcome's status and reason."""
    await shop.consume(stage_event(customer, None, "awareness", shop.clock.now, traits={"email": email}))
    await shop.deliver()
    async with shop.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT status, suppressed_reason FROM messages WHERE customer_id = :c"),
                                   {"c": customer})).all()
    return len(sink.to(email)), [tuple(row) for row in rows]


async def test_a_new_explicit_opt_in_after_the_erasure_lifts_the_address_suppression(shop):
    shop, sink = shop
    h = uuid.uuid4().hex[:10]
    user, email = f"user-{h}", f"bea.{h}@example.com"
    await shop.consume(identify(user, f"anon-{h}", {"email": email}, T0),
                       track_event(user, "Subscribed", T0, email=email))
    erased_at = T0 + timedelta(days=1)
    await shop.consume(erasure_event(str(uuid.uuid4()), id_hashes(PEPPER, [user, f"anon-{h}"]), erased_at))
    shop.clock.now = T0 + timedelta(days=2)
    assert await sent_to(shop, sink, f"a-{h}", email) == (0, [("suppressed", "erased")])

    # Not an opt-in that lifts it: a verified one replayed from before the erasure, an unverified one after it (a
    # browser can name anyone), the opt-in trait of an identify after it (a CRM sends it with every identify).
    new_user = f"user-new-{h}"
    await shop.consume(track_event(new_user, "Subscribed", erased_at - timedelta(hours=1), email=email),
                       unverified(track_event(new_user, "Subscribed", shop.clock.now, email=email)),
                       identify(new_user, f"anon-new-{h}", {"email": email, "emailOptIn": True}, shop.clock.now))
    assert await sent_to(shop, sink, f"b-{h}", email) == (0, [("suppressed", "erased")])

    # A verified Subscribed made after the erasure: the marker goes, marketing reaches the address again.
    await shop.consume(track_event(new_user, "Subscribed", erased_at + timedelta(seconds=1), email=email))
    assert await sent_to(shop, sink, f"c-{h}", email) == (1, [("sent", None)])
    async with shop.engine.connect() as conn:
        assert await erased_address_count(conn, email) == 0


async def erased_address_count(conn, email: str) -> int:
    return (await conn.execute(text("SELECT count(*) FROM erased_addresses WHERE address_hash = :m"),
                               {"m": address_marker(PEPPER, email)})).scalar_one()


async def test_an_operator_opt_in_by_api_lifts_the_address_suppression(shop):
    shop, sink = shop
    h = uuid.uuid4().hex[:10]
    user, email = f"user-{h}", f"cy.{h}@example.com"
    await shop.consume(identify(user, f"anon-{h}", {"email": email}, T0))
    await shop.consume(erasure_event(str(uuid.uuid4()), id_hashes(PEPPER, [user, f"anon-{h}"]), T0 + timedelta(days=1)))
    shop.clock.now = T0 + timedelta(days=2)
    async with running(create_app(shop.settings.model_copy(update={"role": "api"}), clock=shop.clock)) as client:
        auth = {"authorization": f"Bearer {TOKEN}"}
        answer = await client.put("/v1/consent/email/marketing", headers=auth,
                                  json={"email": email, "state": "unsubscribed"})
        assert answer.status_code == 200, answer.text
        async with shop.engine.connect() as conn:
            assert await erased_address_count(conn, email) == 1  # a no lifts nothing
        answer = await client.put("/v1/consent/email/marketing", headers=auth,
                                  json={"email": email, "state": "subscribed"})
        assert answer.status_code == 200 and answer.json()["changed"], answer.text
    async with shop.engine.connect() as conn:
        assert await erased_address_count(conn, email) == 0
    assert await sent_to(shop, sink, f"a-{h}", email) == (1, [("sent", None)])
