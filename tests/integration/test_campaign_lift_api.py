"""Campaign lift end to end (issue 16): stage transitions through messaging's real handlers and delivery worker
(real PostgreSQL, real SMTP server - aiosmtpd, the session's sink), orders and refunds through the real
`Order Completed` / `Order Refunded` handlers, then `GET /v1/campaigns/{campaign}/lift` on the service's app -
all on one clock the test moves (`tests.support.campaign_lift`)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.support.campaign_lift import START, Shop, welcome_everyone
from tests.support.messaging import messaging_namespace


@pytest.fixture
def namespace(infra):
    return messaging_namespace(infra)  # a database per test: the campaign's figures are the test's alone


async def test_a_campaign_that_sells_shows_a_positive_lift_with_an_interval_above_zero(namespace, mail_sink):
    _, port = mail_sink
    shop = Shop(namespace, port, holdout_share=0.5)
    try:
        campaign, groups = await welcome_everyone(shop)
        held = sorted(p for p, g in groups.items() if g == "holdout")
        treated = sorted(p for p, g in groups.items() if g == "treatment")
        assert 100 <= len(held) <= 200
        # Two days on: half the treated people order, a tenth of the held out; one treated buyer in ten refunds.
        shop.clock.now = START + timedelta(days=2)
        buyers = treated[::2] + held[::10]
        orders = [shop.touchpoint(p, "Order Completed", order_id=f"o-{p}", revenue=50) for p in buyers]
        orders.append(orders[0])  # a redelivery: counted once
        await shop.consume(orders)
        await shop.consume([shop.touchpoint(p, "Order Refunded", order_id=f"o-{p}") for p in treated[::20]])
        # After the window: held-out people buying late do not count.
        shop.clock.now = START + timedelta(days=9)
        await shop.consume([shop.touchpoint(p, "Order Completed", order_id=f"late-{p}", revenue=80) for p in held])
        shop.clock.now = START + timedelta(days=10)

        lift = await shop.lift(campaign, holdout_share=0.5)
    finally:
        await shop.engine.dispose()

    assert lift["status"] == "measured", lift["reasons"]
    assert lift["holdout"]["eligible"] == len(held) and lift["treatment"]["eligible"] == len(treated)
    assert lift["holdout"]["sent"] == 0 and lift["treatment"]["sent"] == len(treated)
    assert lift["holdout"]["converted"] == len(held[::10]) and lift["treatment"]["converted"] == len(treated[::2])
    assert lift["treatment"]["revenue"] == 50 * (len(treated[::2]) - len(treated[::20]))
    assert lift["holdout"]["revenue"] == 50 * len(held[::10])
    difference = lift["conversion_difference"]
    assert difference["estimate"] > 0.3 and difference["interval"]["low"] > 0 and difference["significant"]
    assert not lift["sample_ratio"]["alarm"]
    assert lift["messages"]["sent"] == len(treated)
    assert lift["messages"]["suppressed"] == {"holdout": len(held)}
    assert lift["minimum_detectable_effect"] is not None and lift["minimum_detectable_effect"] < 0.2


async def test_a_holdout_split_unlike_the_configured_share_raises_the_sample_ratio_alarm(namespace, mail_sink):
    """The share changed under a running campaign: half were held out, the API checks against 10%."""
    _, port = mail_sink
    shop = Shop(namespace, port, holdout_share=0.5)
    try:
        campaign, groups = await welcome_everyone(shop)
        shop.clock.now = START + timedelta(days=1)
        lift = await shop.lift(campaign, holdout_share=0.1)
    finally:
        await shop.engine.dispose()
    assert lift["sample_ratio"]["alarm"] and lift["sample_ratio"]["p_value"] < 0.001
    assert lift["sample_ratio"]["expected_share"] == 0.1
    assert 0.35 < lift["sample_ratio"]["observed_share"] < 0.65
    assert lift["holdout"]["converted"] == lift["treatment"]["converted"] == 0
    assert lift["status"] == "not_enough_data"  # nobody bought yet: the alarm stands regardless
    assert lift["minimum_detectable_effect"] is not None


async def test_orders_follow_merges_either_way_and_refunds_net_once(namespace, mail_sink):
    """An order by a guest key merged into the customer later, one by a guest key merged before; an order sent
    twice and refunded in part (the refund itself redelivered) and another refunded whole."""
    _, port = mail_sink
    shop = Shop(namespace, port, holdout_share=0.0)
    tag = uuid.uuid4().hex[:6]
    ann, bob, cat = (f"{name}-{tag}" for name in ("ann", "bob", "cat"))
    try:
        await shop.consume([shop.welcome(customer) for customer in (ann, bob, cat)])
        await shop.deliver()
        campaign, _ = await shop.groups()
        shop.clock.now = START + timedelta(days=1)
        await shop.consume([shop.touchpoint(f"guest-{ann}", "Order Completed", order_id=f"a-{tag}", revenue=20)])
        await shop.consume([shop.merge(f"guest-{ann}", ann), shop.merge(f"guest-{bob}", bob)])
        await shop.consume([shop.touchpoint(f"guest-{bob}", "Order Completed", order_id=f"b-{tag}", revenue=40)])
        order = shop.touchpoint(cat, "Order Completed", order_id=f"c-{tag}", revenue=30)
        refund = shop.touchpoint(cat, "Order Refunded", order_id=f"c-{tag}", revenue=5)
        await shop.consume([order, order, refund])
        await shop.consume([refund, shop.touchpoint(cat, "Order Completed", order_id=f"d-{tag}", revenue=70)])
        await shop.consume([shop.touchpoint(cat, "Order Refunded", order_id=f"d-{tag}")])
        shop.clock.now = START + timedelta(days=3)
        lift = await shop.lift(campaign, holdout_share=0.0)
    finally:
        await shop.engine.dispose()
    assert lift["treatment"]["eligible"] == 3 and lift["treatment"]["converted"] == 3
    assert lift["treatment"]["revenue"] == 20 + 40 + 25
    assert lift["holdout"]["eligible"] == 0 and lift["status"] == "not_enough_data"
