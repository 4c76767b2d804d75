"""Redemptions against real PostgreSQL through the API: 50 concurrent redemptions of cost c against a balance
B -> exactly floor(B/c) succeed (stock never below zero, one spend entry each); Idempotency-Key replays and
conflicts; a cancellation gives the points back to the lots they came from."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_loyalty.db import ledger, lots
from lifecycle_loyalty.main import create_app
from lifecycle_loyalty.workers.expiry import sweep_tiers

from tests.support.in_process import running
from tests.support.loyalty import announced, apply, loyalty_settings, order_event

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=15)  # past the 14 pending days
TOKEN = "loyalty-redeem-token-3e9a7c10b5d2"
ADMIN = "loyalty-redeem-admin-4f0b8d21c6e3"


@pytest.fixture
def engine(loyalty_engine):
    return loyalty_engine


@pytest.fixture
async def client(namespace):
    app_settings = loyalty_settings(namespace, api_tokens=TOKEN, admin_token=ADMIN)
    async with running(create_app(app_settings, clock=lambda: NOW)) as client:
        client.headers["authorization"] = f"Bearer {TOKEN}"
        yield client


async def shop(client, *, cost: int, stock: int | None, tiers: list[str] | None = None) -> str:
    reward = f"r-{uuid.uuid4().hex[:8]}"
    answer = await client.put(f"/v1/admin/rewards/{reward}", headers={"authorization": f"Bearer {ADMIN}"},
                              json={"name": "10% off", "kind": "discount_code", "cost": cost, "stock": stock,
                                    "tiers": tiers})
    assert answer.status_code == 200, answer.text
    return reward


async def customer_with(engine, *amounts: int) -> str:
    ann = f"c-{uuid.uuid4().hex[:10]}"
    await apply(engine, [order_event(ann, "order_completed", f"o{i}", at=T0 + timedelta(minutes=i), revenue=amount)
                         for i, amount in enumerate(amounts)])
    return ann


def redeem(client, customer: str, reward: str, key: str | None = None):
    return client.post(f"/v1/customers/{customer}/redemptions", json={"reward_id": reward},
                       headers={"Idempotency-Key": key or str(uuid.uuid4())})


@pytest.mark.parametrize(("balance", "cost", "stock"), [(1000, 70, None), (1000, 70, 5), (999, 333, 50)])
async def test_concurrent_redemptions_succeed_exactly_as_far_as_the_points_and_stock_go(engine, client, balance,
                                                                                       cost, stock):
    reward = await shop(client, cost=cost, stock=stock)
    ann = await customer_with(engine, balance)
    answers = await asyncio.gather(*(redeem(client, ann, reward) for _ in range(50)))
    succeeded = [a for a in answers if a.status_code == 201]
    expected = min(balance // cost, stock if stock is not None else 50)
    assert len(succeeded) == expected
    assert {a.json()["code"] for a in answers if a.status_code != 201} == (
        {"insufficient_points"} if stock is None or stock >= balance // cost else {"out_of_stock"})
    async with engine.connect() as conn:
        spends = [e for e in await ledger.entries(conn, customer_id=ann) if e["kind"] == "spend"]
        held = await lots.holdings(conn, ann)
    assert len(spends) == expected and all(e["points"] == -cost for e in spends)
    assert sum(lot.remaining for lot in held.lots) == balance - expected * cost >= 0
    catalogue = (await client.get("/v1/rewards")).json()
    left = next(r for r in catalogue if r["id"] == reward)["stock"]
    assert left == (None if stock is None else stock - expected)


async def test_the_same_key_sent_concurrently_redeems_once(engine, client):
    reward = await shop(client, cost=10, stock=None)
    ann = await customer_with(engine, 100)
    answers = await asyncio.gather(*(redeem(client, ann, reward, key="same-key") for _ in range(10)))
    assert {a.status_code for a in answers} == {201} and len({a.json()["id"] for a in answers}) == 1
    async with engine.connect() as conn:
        assert [e["points"] for e in await ledger.entries(conn, customer_id=ann) if e["kind"] == "spend"] == [-10]


async def test_the_same_key_replays_the_same_answer_and_another_body_is_a_conflict(engine, client):
    cheap, dear = await shop(client, cost=10, stock=None), await shop(client, cost=10_000, stock=None)
    ann = await customer_with(engine, 100)
    first = await redeem(client, ann, cheap, key="key-1")
    again = await redeem(client, ann, cheap, key="key-1")
    assert (first.status_code, again.status_code, first.json()) == (201, 201, again.json())
    other = await redeem(client, ann, dear, key="key-1")
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    refused = await redeem(client, ann, dear, key="key-2")
    assert (refused.status_code, refused.json()["code"]) == (409, "insufficient_points")
    unknown = await redeem(client, ann, "no-such-reward")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_reward")
    missing = await client.post(f"/v1/customers/{ann}/redemptions", json={"reward_id": cheap})
    assert missing.status_code == 400 and "Idempotency-Key" in missing.text
    async with engine.connect() as conn:
        assert [e["points"] for e in await ledger.entries(conn, customer_id=ann) if e["kind"] == "spend"] == [-10]


async def test_a_cancelled_redemption_gives_its_points_back_to_their_lots(engine, client):
    reward = await shop(client, cost=150, stock=1)
    ann = await customer_with(engine, 100, 100)
    async with engine.connect() as conn:
        before = await lots.holdings(conn, ann)
    redeemed = (await redeem(client, ann, reward)).json()
    async with engine.connect() as conn:
        assert sorted(lot.remaining for lot in (await lots.holdings(conn, ann)).lots) == [50]
    for _ in range(2):  # cancelling again changes nothing
        cancelled = await client.post(f"/v1/customers/{ann}/redemptions/{redeemed['id']}/cancel")
        assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    async with engine.connect() as conn:
        after = await lots.holdings(conn, ann)
        kinds = [(e["kind"], e["points"]) for e in await ledger.entries(conn, customer_id=ann)]
    assert after == before  # the same lots, the same remaining points, the same expiry
    assert kinds == [("earn", 100), ("earn", 100), ("spend", -150), ("cancel", 150)]
    events = [(e["type"], e["data"]["redemption_id"], e["data"]["cost"]) for e in await announced(engine, ann)]
    assert events == [("loyalty.reward_redeemed", redeemed["id"], 150)]
    assert next(r for r in (await client.get("/v1/rewards")).json() if r["id"] == reward)["stock"] == 1
    assert (await client.post(f"/v1/customers/{ann}/redemptions/not-an-id/cancel")).status_code == 404


async def test_a_reward_for_a_tier_is_redeemed_once_the_customer_reaches_it(engine, client):
    early_access = await shop(client, cost=100, stock=None, tiers=["silver", "gold"])
    ann = await customer_with(engine, 600)
    tier = (await client.get(f"/v1/customers/{ann}/tier")).json()
    assert (tier["tier"], tier["points_in_window"], tier["next_tier"], tier["points_to_next"]) == (
        "member", 600, "silver", 400)
    refused = await redeem(client, ann, early_access)
    assert (refused.status_code, refused.json()["code"]) == (409, "not_for_this_tier")
    await apply(engine, [order_event(ann, "order_completed", "o-more", at=T0 + timedelta(days=1), revenue=400)])
    assert (await client.get(f"/v1/customers/{ann}/tier")).json()["tier"] == "silver"
    changes = [(e["data"]["from_tier"], e["data"]["to_tier"], e["data"]["direction"])
               for e in await announced(engine, ann) if e["type"] == "loyalty.tier_changed"]
    assert changes == [("member", "silver", "reached")]
    assert (await redeem(client, ann, early_access)).status_code == 201
    await apply(engine, [order_event(ann, "order_refunded", "o-more", at=T0 + timedelta(days=2))])
    tier = (await client.get(f"/v1/customers/{ann}/tier")).json()
    assert (tier["tier"], tier["qualifies_for"], tier["points_in_window"]) == ("member", "member", 600)


async def test_a_tier_is_lost_as_the_window_slides_after_its_grace_period(engine):
    ann = await customer_with(engine, 1000)
    for days in (380, 394):  # the points left the 365-day window on day 365: 30 days of grace
        await sweep_tiers(engine, now=T0 + timedelta(days=days), topic="loyalty-events.v1")
    await sweep_tiers(engine, now=T0 + timedelta(days=400), topic="loyalty-events.v1")
    await sweep_tiers(engine, now=T0 + timedelta(days=401), topic="loyalty-events.v1")  # announced once
    changes = [(e["data"]["from_tier"], e["data"]["to_tier"], e["data"]["direction"])
               for e in await announced(engine, ann) if e["type"] == "loyalty.tier_changed"]
    assert changes == [("member", "silver", "reached"), ("silver", "member", "lost")]
