"""Campaigns as data at work (issue 16): durable delays - the feedback request three days after the first order,
the cart reminder four hours after the cart - that survive a restart of messaging and are cancelled when their
condition breaks (the cart bought, the order refunded, the customer out of the audience); loyalty events and
touchpoints starting campaigns; historical causes never sending; each campaign's own priority and holdout share.
Messaging's handlers and delivery worker in-process on a clock the test moves (the app itself, twice, for the
restart), real PostgreSQL, the real broker, a real SMTP server (aiosmtpd, the session's sink)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_messaging.db import campaigns as campaign_db
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.db.models import holdout_assignments, last_events
from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import (
    POINTS_EXPIRING_TYPE,
    TIER_CHANGED_TYPE,
    CloudEvent,
    PointsExpiringData,
    TierChangedData,
    kafka_headers,
)
from lifecycle_shared.testing import eventually
from lifecycle_shared.topics import Topics
from sqlalchemy import select

from tests.support.in_process import kafka_settings, running
from tests.support.messaging import Clock, Shop, loyalty_event, messaging_namespace, stage_event, topic_of, track_event

T0 = datetime(2026, 5, 4, 3, 0, tzinfo=UTC)  # 10:00 in Saigon and Bangkok
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture(scope="module")
def namespace(infra) -> StackConfig:
    return messaging_namespace(infra)


@pytest.fixture
async def engine(namespace):
    eng = create_engine(namespace.database_url(BY_NAME["messaging"]))
    yield eng
    await eng.dispose()


@pytest.fixture
async def shop(engine, mail_sink) -> AsyncIterator[Shop]:
    _, port = mail_sink
    settings = MessagingSettings(environment="development", smtp_port=port, holdout_share=0.0, quiet_hours="off",
                                 cap_per_day=0, cap_per_week=0)
    started = Shop(engine, settings, Clock(T0))
    await started.book.start(engine)  # the shipped campaigns seeded, as at a start
    yield started
    async with engine.begin() as conn:  # the test's own campaigns start nothing in the next test
        for campaign in started.book.current():
            if campaign.id.startswith("t-"):
                await campaign_db.delete(conn, campaign.id)


def received(sink, customer: str) -> list[str]:
    return [m["X-Lifecycle-Template"] for m in sink.to(f"{customer}@example.com")]


def run_id() -> str:
    return uuid.uuid4().hex[:8]


async def test_the_feedback_request_goes_three_days_after_the_first_order_unless_it_was_refunded(shop, mail_sink):
    sink, _ = mail_sink
    run = run_id()
    kept, refunded = f"kept-{run}", f"refunded-{run}"
    await shop.consume(*(stage_event(c, "consideration", "purchase", T0, reason="first_order", orders=1)
                         for c in (kept, refunded)))
    await shop.deliver()
    assert received(sink, kept) == received(sink, refunded) == ["thank_you_feedback"]
    request = (await shop.log(kept))["feedback_request"]
    assert (request["status"], request["campaign_version"], request["trigger"]) == ("queued", 1, "stage_changed")
    assert request["not_before"] == T0 + 3 * DAY  # the timer is a time in the database

    shop.clock.now = T0 + DAY
    await shop.consume(track_event(refunded, "Order Refunded", shop.clock.now, order_id="o-1"))
    shop.clock.now = T0 + 3 * DAY - timedelta(minutes=1)
    await shop.deliver()
    assert received(sink, kept) == ["thank_you_feedback"]  # not yet
    assert (await shop.log(kept))["feedback_request"]["attempts"] == 0  # waiting is no attempt

    shop.clock.now = T0 + 3 * DAY
    await shop.deliver()
    assert received(sink, kept) == ["thank_you_feedback", "feedback_request"]
    cancelled = (await shop.log(refunded))["feedback_request"]
    assert (cancelled["status"], cancelled["suppressed_reason"]) == ("suppressed", "cancelled")
    assert received(sink, refunded) == ["thank_you_feedback"]


async def test_historical_transitions_and_touchpoints_start_nothing_whatever_the_campaigns(shop, mail_sink):
    """Imported history: no thank-you, no feedback request three days on, no cart reminder - no row at all."""
    sink, _ = mail_sink
    customer = f"imported-{run_id()}"
    await shop.consume(stage_event(customer, None, "awareness", T0 - HOUR, historical=True),
                       stage_event(customer, "awareness", "purchase", T0, historical=True, orders=1),
                       track_event(customer, "Product Added", T0, historical=True, name="Áo khoác"))
    for now in (T0, T0 + 5 * HOUR, T0 + 3 * DAY):
        shop.clock.now = now
        await shop.deliver()
    assert await shop.log(customer) == {} and received(sink, customer) == []


async def test_more_cart_events_while_a_reminder_waits_make_no_second_reminder_and_later_ones_do(shop, mail_sink):
    sink, _ = mail_sink
    customer = f"browser-{run_id()}"
    await shop.consume(stage_event(customer, None, "awareness", T0))
    await shop.consume(track_event(customer, "Product Added", T0, name="Nón lá"),
                       track_event(customer, "Cart Abandoned", T0 + timedelta(minutes=10)))
    await shop.consume(track_event(customer, "Product Added", T0 + timedelta(minutes=20), name="Áo dài"))

    async def reminders() -> list[dict]:
        async with shop.engine.connect() as conn:
            return [m for m in await repo.messages_for(conn, customer_id=customer) if m["campaign"] == "cart_reminder"]

    [waiting] = await reminders()  # four hours after the first of them
    assert (waiting["status"], waiting["not_before"]) == ("queued", T0 + 4 * HOUR)
    shop.clock.now = T0 + 4 * HOUR
    await shop.deliver()
    assert received(sink, customer) == ["welcome", "cart_reminder"]
    shop.clock.now = T0 + DAY  # the next day, a new cart: a new reminder
    await shop.consume(track_event(customer, "Product Added", shop.clock.now, name="Nón lá"))
    assert [(m["status"], m["not_before"]) for m in await reminders()] == [
        ("sent", T0 + 4 * HOUR), ("queued", T0 + DAY + 4 * HOUR)]


async def test_a_waiting_message_is_cancelled_when_its_customer_leaves_the_audience(shop, mail_sink):
    sink, _ = mail_sink
    run = run_id()
    stays, leaves = f"stays-{run}", f"leaves-{run}"
    audience = [{"field": "language", "op": "eq", "value": "vi"},
                {"field": "stage", "op": "in", "value": ["awareness", "consideration"]}]
    await shop.campaign(f"t-wishlist-{run}", trigger={"type": "touchpoint", "events": [f"Wishlist Added {run}"]},
                        delay_hours=2, audience=audience)
    await shop.consume(*(stage_event(c, None, "awareness", T0, traits={"locale": "vi-VN"}) for c in (stays, leaves)))
    await shop.consume(*(track_event(c, f"Wishlist Added {run}", T0 + timedelta(minutes=5)) for c in (stays, leaves)))
    assert {(await shop.log(c))[f"t-wishlist-{run}"]["status"] for c in (stays, leaves)} == {"queued"}
    # An hour later `leaves` buys (the stage engine's transition says so): no longer in the audience.
    await shop.consume(stage_event(leaves, "awareness", "purchase", T0 + HOUR, traits={"locale": "vi-VN"}, orders=1))
    shop.clock.now = T0 + 2 * HOUR + timedelta(minutes=5)
    await shop.deliver()
    assert (await shop.log(stays))[f"t-wishlist-{run}"]["status"] == "sent"
    gone = (await shop.log(leaves))[f"t-wishlist-{run}"]
    assert (gone["status"], gone["suppressed_reason"]) == ("suppressed", "audience")


async def test_loyalty_events_start_their_campaigns_with_what_they_tell(shop, mail_sink):
    sink, _ = mail_sink
    run = run_id()
    lan, minh = f"lan-{run}", f"minh-{run}"
    copy = {"vi": {"subject": "{{ points|number }} điểm của bạn sắp hết hạn",
                   "text": "Chào {{ name }}, dùng {{ points|number }} điểm trước khi hết hạn nhé.\n",
                   "html": "<p>Chào {{ name }}, dùng {{ points|number }} điểm trước khi hết hạn nhé.</p>"}}
    await shop.campaign(f"t-expiring-{run}", trigger={"type": "loyalty", "event": "points_expiring", "min_points": 100},
                        content=copy)
    await shop.campaign(f"t-gold-{run}", trigger={"type": "loyalty", "event": "tier_reached", "tiers": ["Gold"]},
                        template="referral_invite")
    traits = {"locale": "vi-VN", "firstName": "Lan"}
    await shop.consume(*(stage_event(c, "purchase", "retention", T0, traits=traits, orders=2) for c in (lan, minh)))
    await shop.deliver()
    sink_before = {c: len(received(sink, c)) for c in (lan, minh)}
    expiring = PointsExpiringData(customer_id=lan, points=1250, expires_at=T0 + 7 * DAY, lot_ids=["l1"], warned_at=T0)
    gold = TierChangedData(customer_id=lan, from_tier="Silver", to_tier="Gold", direction="reached",
                           points_in_window=1500, rule_version="v", changed_at=T0)
    silver = TierChangedData(customer_id=minh, from_tier="Bronze", to_tier="Silver", direction="reached",
                             points_in_window=600, rule_version="v", changed_at=T0)
    await shop.consume(loyalty_event(POINTS_EXPIRING_TYPE, expiring, customer=lan, at=T0),
                       loyalty_event(TIER_CHANGED_TYPE, gold, customer=lan, at=T0),
                       loyalty_event(TIER_CHANGED_TYPE, silver, customer=minh, at=T0))
    shop.clock.now = T0 + timedelta(minutes=1)
    await shop.deliver()
    new = {c: [m for m in sink.to(f"{c}@example.com")][sink_before[c]:] for c in (lan, minh)}
    subjects = {m["X-Lifecycle-Template"]: str(m["Subject"]) for m in new[lan]}
    # the test's own campaigns (their templates) beside the shipped loyalty ones (test_loyalty_campaigns.py)
    assert set(subjects) == {"retention_offer", "referral_invite", "points_expiring", "tier_reached"}
    assert "1.250 điểm" in str(make_header_readable(subjects["retention_offer"]))  # Vietnamese digit grouping
    assert [m["X-Lifecycle-Template"] for m in new[minh]] == ["tier_reached"]  # Silver is not the test's tier
    log = await shop.log(lan)
    assert (log[f"t-expiring-{run}"]["trigger"], log[f"t-gold-{run}"]["trigger"]) == ("loyalty", "loyalty")


def make_header_readable(value: str) -> str:
    from email.header import decode_header, make_header

    return str(make_header(decode_header(value)))


async def test_competing_campaigns_go_by_their_own_priority_and_each_holds_out_its_own_share(shop, mail_sink):
    sink, _ = mail_sink
    run = run_id()
    event = f"Coupon Viewed {run}"
    shop.settings = shop.settings.model_copy(update={"cap_per_day": 1, "holdout_share": 0.0})
    await shop.campaign(f"t-low-{run}", trigger={"type": "touchpoint", "events": [event]}, priority=10,
                        template="come_back_offer")
    await shop.campaign(f"t-high-{run}", trigger={"type": "touchpoint", "events": [event]}, priority=90,
                        template="retention_offer")
    await shop.campaign(f"t-held-{run}", trigger={"type": "touchpoint", "events": [event]}, priority=99,
                        holdout_share=1.0, template="we_miss_you")  # everyone held out, whatever the shop's share
    customer = f"coupon-{run}"
    shop.clock.now = T0 - 2 * DAY
    await shop.consume(stage_event(customer, "purchase", "retention", T0 - 2 * DAY, orders=2))
    await shop.deliver()  # the transition's own offer, two days before
    await shop.consume(track_event(customer, event, T0))
    shop.clock.now = T0
    await shop.deliver()
    log = await shop.log(customer)
    assert (log[f"t-held-{run}"]["status"], log[f"t-held-{run}"]["suppressed_reason"]) == ("suppressed", "holdout")
    assert log[f"t-high-{run}"]["status"] == "sent"
    low = log[f"t-low-{run}"]
    assert (low["status"], low["next_attempt_at"]) == ("queued", datetime(2026, 5, 5, tzinfo=UTC))  # the next day
    async with shop.engine.connect() as conn:
        groups = dict((await conn.execute(select(holdout_assignments.c.campaign, holdout_assignments.c.group)
                                          .where(holdout_assignments.c.person == customer))).all())
    assert groups == {"retention_offer": "treatment", f"t-held-{run}": "holdout", f"t-high-{run}": "treatment",
                      f"t-low-{run}": "treatment"}


# ---- the cart reminder through the app itself, stopped and started again -----------------------------------


@pytest.fixture
async def producer(namespace) -> AsyncIterator[AIOKafkaProducer]:
    started = AIOKafkaProducer(bootstrap_servers=namespace.kafka_bootstrap, acks="all",
                               enable_idempotence=namespace.kafka_idempotence)
    await started.start()
    yield started
    await started.stop()


async def publish(producer: AIOKafkaProducer, namespace: StackConfig, *events: CloudEvent) -> None:
    topics = Topics(namespace.topic_prefix)
    for event in events:
        await producer.send_and_wait(topic_of(event, topics), event.to_bytes(), key=event.subject.encode(),
                                     headers=kafka_headers(event.type))


async def test_a_cart_reminder_waits_in_the_database_through_a_restart_and_is_cancelled_when_the_cart_is_bought(
        namespace, engine, producer, mail_sink, caplog):
    sink, port = mail_sink
    caplog.set_level(logging.INFO, logger="lifecycle_messaging.suppression")
    run = run_id()
    kept, bought = f"cart-kept-{run}", f"cart-bought-{run}"
    clock = Clock(T0)
    settings = MessagingSettings(environment="development", database_url=namespace.database_url(BY_NAME["messaging"]),
                                 kafka=kafka_settings(namespace), smtp_port=port, idle_poll_s=0.05,
                                 campaigns_refresh_s=0.2)

    async def reminder(customer: str) -> dict | None:
        async with engine.connect() as conn:
            return {m["campaign"]: m for m in await repo.messages_for(conn, customer_id=customer)}.get("cart_reminder")

    await publish(producer, namespace, *(stage_event(c, None, "awareness", T0, traits={"locale": "vi-VN"})
                                         for c in (kept, bought)))
    await publish(producer, namespace, *(track_event(c, "Product Added", T0 + timedelta(minutes=1),
                                                     name="Bình giữ nhiệt") for c in (kept, bought)))
    async with running(create_app(settings, clock=clock)):
        for customer in (kept, bought):
            queued = await eventually(lambda c=customer: reminder(c), timeout_s=60, what=f"{customer}'s reminder")
            assert (queued["status"], queued["not_before"]) == ("queued", T0 + timedelta(minutes=1) + 4 * HOUR)
        clock.now = T0 + HOUR
        await publish(producer, namespace, track_event(bought, "Order Completed", clock.now, order_id=f"o-{run}"))

        async def order_seen() -> bool:
            async with engine.connect() as conn:
                return bool((await conn.execute(select(last_events).where(last_events.c.customer_id == bought)))
                            .all())

        await eventually(order_seen, timeout_s=60, what="the order remembered")
        assert "cart_reminder" not in received(sink, kept) + received(sink, bought)
    # Messaging is stopped; four hours pass. A new app: nothing of the first is left but the database.
    clock.now = T0 + 4 * HOUR + timedelta(minutes=5)
    async with running(create_app(settings, clock=clock)):
        async def settled() -> bool:
            rows = [await reminder(c) for c in (kept, bought)]
            return all(row is not None and row["status"] != "queued" for row in rows)

        await eventually(settled, timeout_s=60, what="both reminders judged")
    assert (await reminder(kept))["status"] == "sent"
    [email] = [m for m in sink.to(f"{kept}@example.com") if m["X-Lifecycle-Template"] == "cart_reminder"]
    assert "Bình giữ nhiệt" in make_header_readable(email["Subject"])  # the product added, in Vietnamese copy
    gone = await reminder(bought)
    assert (gone["status"], gone["suppressed_reason"]) == ("suppressed", "cancelled")
    assert "cart_reminder" not in received(sink, bought)
    [logged] = [r for r in caplog.records if getattr(r, "message_id", None) == gone["id"]]
    assert (logged.reason, logged.campaign, logged.detail) == (
        "cancelled", "cart_reminder", "touchpoint.order_completed")
