"""Loyalty's earn rules as data against real PostgreSQL: replaced through the admin API (versions immutable),
previewed, and applied by the handlers - a shop selling in dong, reviews and referrals once each."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_loyalty.db import ledger, rulesets
from lifecycle_loyalty.domain.rules import DEFAULT_EARN_RULES
from lifecycle_loyalty.main import create_app

from tests.support.in_process import running
from tests.support.loyalty import announced, apply, loyalty_settings, merged_event, order_event, stage_event

T0 = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
ADMIN = "loyalty-rules-admin-token-61f0e2b8c4"


@pytest.fixture
def engine(loyalty_engine):
    return loyalty_engine


@pytest.fixture
async def admin(namespace, engine):
    app_settings = loyalty_settings(namespace, api_tokens="unused-token-7c2d9e0f1a3b", admin_token=ADMIN)
    async with running(create_app(app_settings, clock=lambda: T0)) as client:
        client.headers["authorization"] = f"Bearer {ADMIN}"
        yield client
    async with engine.begin() as conn:  # the next test starts from the defaults again
        await rulesets.activate(conn, DEFAULT_EARN_RULES)


def new_customer() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


async def entries(engine, customer: str) -> list[tuple[str, int, str, str]]:
    async with engine.connect() as conn:
        return [(e["kind"], e["points"], e["rule"], e["rule_version"])
                for e in await ledger.entries(conn, customer_id=customer)]


async def test_a_dong_shop_puts_its_rules_in_force_and_its_orders_earn_by_them(admin, engine):
    version = f"vnd-{uuid.uuid4().hex[:6]}"
    defaults = DEFAULT_EARN_RULES.as_document()
    rules = {**defaults, "version": version, "default_currency": "VND", "currencies": {
        **defaults["currencies"], "VND": {"points": "1", "per": "1000", "zero_decimal": True,
                                          "min_order_value": "100000"}}}
    assert (await admin.put("/v1/admin/rules", json=rules)).status_code == 200
    assert (await admin.get("/v1/admin/rules")).json()["version"] == version
    changed = {**rules, "pending_days": 3}
    refused = await admin.put("/v1/admin/rules", json=changed)
    assert refused.status_code == 409 and version in refused.text

    ann = new_customer()
    await apply(engine, [order_event(ann, "order_completed", "o1", at=T0, total=535_000, shipping=35_000),
                         order_event(ann, "order_completed", "o2", at=T0, total=99_000),  # under the minimum
                         order_event(ann, "order_completed", "o3", at=T0, revenue=12, currency="USD")])
    assert await entries(engine, ann) == [("earn", 500, f"points_per_currency_unit/{version}", version),
                                          ("earn", 12, f"points_per_currency_unit/{version}", version)]


async def test_the_preview_shows_what_an_event_would_earn_under_any_rules(admin):
    thb = {**DEFAULT_EARN_RULES.as_document(), "version": "thb-preview", "default_currency": "THB",
           "currencies": {"THB": {"points": "1", "per": "10", "zero_decimal": False}}}
    order = {"type": "order_completed", "properties": {"revenue": "1250.50", "currency": "THB"}}
    answer = (await admin.post("/v1/admin/rules/preview", json={"event": order, "rules": thb})).json()
    assert (answer["rule_version"], answer["points"]) == ("thb-preview", 125)
    referral = (await admin.post("/v1/admin/rules/preview", json={"event": {"type": "referral_completed"}})).json()
    assert [(e["customer"], e["points"]) for e in referral["entries"]] == [("referrer", 500), ("customer", 250)]
    bad = await admin.post("/v1/admin/rules/preview", json={"event": {"type": "order_completed",
                                                                      "properties": {"revenue": "NaN"}}})
    assert bad.status_code == 400 and "revenue" in bad.text
    stage = await admin.post("/v1/admin/rules/preview", json={"event": {"type": "stage_reached"}})
    assert stage.status_code == 400 and "to_stage" in stage.text


def activity(customer: str, name: str, *, at: datetime, **properties):
    event = order_event(customer, name, "-", at=at, **properties)
    event.data["properties"].pop("order_id")
    return event


async def test_reviews_earn_once_each_within_the_weekly_cap_and_referrals_pay_both_sides(engine):
    ann, bob = new_customer(), new_customer()
    reviews = [activity(ann, "review_written", at=T0 + timedelta(hours=i), review_id=f"{ann}-r{i % 4}")
               for i in range(6)]  # r0 and r1 sent twice: four reviews, 200 points before the cap of 150
    await apply(engine, reviews[:3])
    await apply(engine, reviews[3:])
    await apply(engine, [activity(ann, "review_written", at=T0 + timedelta(days=7), review_id=f"{ann}-r9")])
    assert [(kind, points) for kind, points, *_ in await entries(engine, ann)] == [
        ("earn", 50), ("earn", 50), ("earn", 50), ("earn", 50)]  # three in the first week, one the next

    referral = activity(ann, "referral_completed", at=T0, referrer_id=bob)
    await apply(engine, [referral, activity(ann, "referral_completed", at=T0 + timedelta(hours=1),
                                            referrer_id=bob)])  # the same referee again: once
    assert [(kind, points, rule) for kind, points, rule, _ in await entries(engine, bob)] == [
        ("earn", 500, "referral:referrer")]
    assert ("earn", 250, "referral:referee", "default-v1") in await entries(engine, ann)


@pytest.mark.parametrize("one_batch", [False, True])
async def test_a_silver_customer_earns_with_its_multiplier_and_a_refund_takes_exactly_that_back(admin, engine,
                                                                                             one_batch):
    defaults = DEFAULT_EARN_RULES.as_document()
    levels = [{"name": "member", "min_points": 0, "multiplier": "1"},
              {"name": "silver", "min_points": 1000, "multiplier": "1.5"}]
    rules = {**defaults, "version": f"tiers-{uuid.uuid4().hex[:6]}", "tiers": {**defaults["tiers"], "levels": levels}}
    assert (await admin.put("/v1/admin/rules", json=rules)).status_code == 200
    ann = new_customer()
    orders = [order_event(ann, "order_completed", "o1", at=T0, revenue=1000),  # reaches silver at 1x
              order_event(ann, "order_completed", "o2", at=T0 + timedelta(days=1), revenue="99.50")]
    for batch in ([orders] if one_batch else [[order] for order in orders]):
        await apply(engine, batch)
    assert [(kind, points) for kind, points, *_ in await entries(engine, ann)] == [("earn", 1000), ("earn", 148)]
    await apply(engine, [order_event(ann, "order_refunded", "o2", at=T0 + timedelta(days=2))])
    async with engine.connect() as conn:
        assert (await ledger.balance(conn, customer_id=ann))["balance"] == 1000


def tier_moves(events: list[dict]) -> list[tuple[str, str, str]]:
    return [(e["data"]["from_tier"], e["data"]["to_tier"], e["data"]["direction"])
            for e in events if e["type"] == "loyalty.tier_changed"]


async def test_points_other_than_an_orders_announce_the_tier_they_reach_once(engine):
    """A review, a stage bonus and a merge each carry a customer over the silver line (1,000 points earned):
    `loyalty.tier_changed` is announced by the event that did it, not left to the nightly sweep, and a
    redelivery announces nothing more."""
    ann, bob, guest, carl = new_customer(), new_customer(), new_customer(), new_customer()
    await apply(engine, [order_event(ann, "order_completed", "a1", at=T0, total=980),
                         order_event(bob, "order_completed", "b1", at=T0, total=600),
                         order_event(carl, "order_completed", "c1", at=T0, total=700),
                         order_event(guest, "order_completed", "g1", at=T0, total=400)])
    assert [tier_moves(await announced(engine, c)) for c in (ann, bob, carl)] == [[], [], []]

    review = activity(ann, "review_written", at=T0 + timedelta(hours=1), review_id=f"{ann}-r1")
    bonus = stage_event(bob, at=T0 + timedelta(hours=1), verified=True)  # 600 + the loyalty stage's 500
    await apply(engine, [review, bonus])
    await apply(engine, [review, bonus])  # redelivered
    assert tier_moves(await announced(engine, ann)) == [("member", "silver", "reached")]
    assert tier_moves(await announced(engine, bob)) == [("member", "silver", "reached")]

    merge = merged_event(carl, guest, at=T0 + timedelta(hours=2))  # 700 + the guest's 400
    await apply(engine, [merge])
    await apply(engine, [merge])
    assert tier_moves(await announced(engine, carl)) == [("member", "silver", "reached")]
