"""The default loyalty campaigns (issue 16) end to end in messaging: loyalty's own announcements
(`lifecycle_loyalty.domain.announcements`: a tier reached, points about to expire, a reward redeemed) through
messaging's real runner and delivery worker, real PostgreSQL and a real SMTP server (aiosmtpd, the session's
sink). The emails are read back with Python's `email` package: Vietnamese and Thai subjects and bodies, the
points with the locale's digit grouping, the expiry day on the customer's own calendar (Buddhist era in Thai),
the shop's link. A redelivered announcement sends once; an unsubscribed address still gets the reward
confirmation (transactional) and none of the marketing ones."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

import pytest
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_loyalty.domain import announcements
from lifecycle_loyalty.domain.rules import TierRule
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import CloudEvent, RewardRedeemedData
from lifecycle_shared.topics import Topics

from tests.support.messaging import Clock, Shop, messaging_namespace, stage_event, track_event

T0 = datetime(2026, 5, 4, 3, 0, tzinfo=UTC)  # 10:00 in Saigon and Bangkok
# The lots' expiry: 17:30 UTC on 18 May is already 19 May in Saigon and Bangkok (UTC+7).
EXPIRES = datetime(2026, 5, 18, 17, 30, tzinfo=UTC)
SHOP_URL = "https://moc.example/rewards"
TOPIC = Topics().loyalty_events
LOYALTY_TEMPLATES = ("tier_reached", "points_expiring", "reward_redeemed")


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
                                 cap_per_day=0, cap_per_week=0, shop_url=SHOP_URL)
    started = Shop(engine, settings, Clock(T0))
    await started.book.start(engine)  # the shipped campaigns seeded, as at a start
    yield started


def announced(customer: str, *, run: str) -> list[CloudEvent]:
    """What loyalty announces for `customer`, built by loyalty's own functions: silver reached, 1,250 points in
    two lots expiring (the earlier one's day told), a free-shipping reward redeemed for 500 points."""
    tier = announcements.tier_changes({customer: "member"}, {customer: ("silver", 1200)}, rule=TierRule(),
                                      rule_version="v1", cause=f"order-{run}", topic=TOPIC, at=T0)
    expiring = announcements.points_expiring(
        {customer: [(f"lot-a-{run}", 700, EXPIRES), (f"lot-b-{run}", 550, EXPIRES + timedelta(days=30))]},
        topic=TOPIC, at=T0)
    redeemed = announcements.reward_redeemed(RewardRedeemedData(
        customer_id=customer, redemption_id=f"redemption-{run}", reward_id="free-ship", reward_kind="free_shipping",
        cost=500, redeemed_at=T0), topic=TOPIC)
    return [event for _, event in [*tier, *expiring, redeemed]]


def loyalty_mail(sink, customer: str) -> dict[str, EmailMessage]:
    """The loyalty emails `customer` received, by template, parsed as a mail client would."""
    parsed: dict[str, EmailMessage] = {}
    for received in sink.to(f"{customer}@example.com"):
        template = received["X-Lifecycle-Template"]
        if template in LOYALTY_TEMPLATES:
            assert template not in parsed, f"{template} arrived twice"
            parsed[template] = _parsed(received)
    return parsed


def _parsed(received: Message) -> EmailMessage:
    message = message_from_bytes(received.as_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


async def a_customer(shop: Shop, *, locale: str, timezone: str, name: str) -> str:
    """A known customer in retention, with their address, locale and zone (what a transition tells messaging)."""
    customer = f"{locale}-{uuid.uuid4().hex[:8]}"
    traits = {"locale": locale, "timezone": timezone, "firstName": name}
    await shop.consume(stage_event(customer, "purchase", "retention", T0 - timedelta(minutes=5), traits=traits,
                                   orders=2))
    return customer


async def test_loyalty_announcements_send_their_emails_in_vietnamese_and_thai(shop, mail_sink):
    sink, _ = mail_sink
    run = uuid.uuid4().hex[:8]
    lan = await a_customer(shop, locale="vi-VN", timezone="Asia/Ho_Chi_Minh", name="Lan")
    somchai = await a_customer(shop, locale="th-TH", timezone="Asia/Bangkok", name="สมชาย")
    await shop.consume(*announced(lan, run=run), *announced(somchai, run=f"{run}-th"))
    shop.clock.now = T0 + timedelta(minutes=1)
    await shop.deliver()

    vi, th = loyalty_mail(sink, lan), loyalty_mail(sink, somchai)
    assert set(vi) == set(th) == set(LOYALTY_TEMPLATES)

    assert vi["tier_reached"]["Subject"] == "Chúc mừng Lan đã lên hạng Silver!"
    assert "thành viên hạng Silver của Shop" in text_of(vi["tier_reached"])
    assert vi["points_expiring"]["Subject"] == "1.250 điểm của bạn sẽ hết hạn vào ngày 19/05/2026 - dùng ngay kẻo lỡ!"
    assert "Dùng điểm ngay: " + SHOP_URL in text_of(vi["points_expiring"])
    assert f'href="{SHOP_URL}"' in html_of(vi["points_expiring"])
    assert vi["reward_redeemed"]["Subject"] == "Đổi điểm thành công: ưu đãi miễn phí vận chuyển"
    assert "Bạn đã đổi thành công ưu đãi miễn phí vận chuyển với 500 điểm." in text_of(vi["reward_redeemed"])

    assert th["tier_reached"]["Subject"] == "ยินดีด้วยค่ะ คุณสมชาย ได้เลื่อนเป็นสมาชิกระดับ Silver แล้ว"
    assert th["points_expiring"]["Subject"] == (
        "คะแนนสะสม 1,250 คะแนนของคุณจะหมดอายุวันที่ 19 พฤษภาคม 2569 รีบใช้ก่อนนะคะ")  # Buddhist era: 2026 + 543
    assert "จะหมดอายุในวันที่ 19 พฤษภาคม 2569" in text_of(th["points_expiring"])
    assert th["reward_redeemed"]["Subject"] == "แลกคะแนนสำเร็จแล้วค่ะ: สิทธิ์ส่งฟรี"
    assert "คุณได้ใช้ 500 คะแนนแลกสิทธิ์ส่งฟรีเรียบร้อยแล้ว" in text_of(th["reward_redeemed"])
    assert '<html lang="th">' in html_of(th["reward_redeemed"])

    # marketing carries the one-click unsubscribe; the confirmation is transactional and carries none
    for mail in (vi, th):
        assert mail["points_expiring"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["tier_reached"]["List-Unsubscribe"] is not None
        assert mail["reward_redeemed"]["List-Unsubscribe"] is None


async def test_a_redelivered_announcement_sends_once(shop, mail_sink):
    """Loyalty writes an announcement again with the same id (its ids derive from their cause); the broker may
    deliver one twice. Either way: one email per campaign."""
    sink, _ = mail_sink
    run = uuid.uuid4().hex[:8]
    lan = await a_customer(shop, locale="vi", timezone="Asia/Ho_Chi_Minh", name="Lan")
    first = announced(lan, run=run)
    await shop.consume(*first)
    await shop.consume(*first, *announced(lan, run=run))  # redelivered, and announced again
    shop.clock.now = T0 + timedelta(minutes=1)
    await shop.deliver()
    await shop.consume(*first)  # after the send, too
    await shop.deliver()
    assert sorted(loyalty_mail(sink, lan)) == sorted(LOYALTY_TEMPLATES)  # loyalty_mail fails on a second copy
    log = await shop.log(lan)
    assert {template: log[template]["status"] for template in LOYALTY_TEMPLATES} == dict.fromkeys(
        LOYALTY_TEMPLATES, "sent")


async def test_an_unsubscribed_address_gets_the_reward_confirmation_and_none_of_the_marketing(shop, mail_sink):
    sink, _ = mail_sink
    run = uuid.uuid4().hex[:8]
    somchai = await a_customer(shop, locale="th", timezone="Asia/Bangkok", name="Somchai")
    await shop.consume(track_event(somchai, "Unsubscribed", T0 - timedelta(minutes=1),
                                   email=f"{somchai}@example.com"))
    await shop.consume(*announced(somchai, run=run))
    shop.clock.now = T0 + timedelta(minutes=1)
    await shop.deliver()
    assert sorted(loyalty_mail(sink, somchai)) == ["reward_redeemed"]
    log = await shop.log(somchai)
    assert {template: (log[template]["status"], log[template]["suppressed_reason"])
            for template in ("tier_reached", "points_expiring")} == dict.fromkeys(
        ("tier_reached", "points_expiring"), ("suppressed", "consent"))


async def test_a_small_expiring_balance_is_not_nagged_about(shop, mail_sink):
    """The reminder waits for 100 points (campaigns/default.yaml): 99 about to expire start nothing."""
    sink, _ = mail_sink
    lan = await a_customer(shop, locale="vi", timezone="Asia/Ho_Chi_Minh", name="Lan")
    few = announcements.points_expiring({lan: [(f"lot-{lan}", 99, EXPIRES)]}, topic=TOPIC, at=T0)
    await shop.consume(*(event for _, event in few))
    shop.clock.now = T0 + timedelta(minutes=1)
    await shop.deliver()
    assert loyalty_mail(sink, lan) == {} and "points_expiring" not in await shop.log(lan)
