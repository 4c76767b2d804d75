"""The finance figures against real PostgreSQL through the admin API: the roll-forward of any period closes on
the sum of the ledger's entries before its end (random ledgers), chains period to period; the liability is net
of the breakage of mature earning-month cohorts, with the points still to expire by month."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lifecycle_loyalty.db import ledger
from lifecycle_loyalty.domain.earning import Entry
from lifecycle_loyalty.main import create_app
from lifecycle_loyalty.workers.expiry import expire_once

from tests.support.in_process import running
from tests.support.loyalty import apply, ledger_sum_before, loyalty_settings, order_event

T0 = datetime(2031, 1, 1, tzinfo=UTC)
TOKEN = "loyalty-finance-token-2b7d4e91c0a6"
ADMIN = "loyalty-finance-admin-9e1c3a57f2b8"
KINDS = ("earn", "bonus", "spend", "refund_spend", "expire", "reverse", "adjust", "move_in", "move_out", "debt",
         "settlement")


@pytest.fixture
def clock():
    return [T0]


@pytest.fixture
async def client(namespace, clock):
    app_settings = loyalty_settings(namespace, api_tokens=TOKEN, admin_token=ADMIN)
    async with running(create_app(app_settings, clock=lambda: clock[0])) as client:
        client.headers["authorization"] = f"Bearer {ADMIN}"
        yield client


async def roll(client, start: datetime, end: datetime) -> dict:
    answer = await client.get("/v1/admin/finance/roll-forward", params={"from": start.isoformat(),
                                                                         "to": end.isoformat()})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("seed", range(5))
async def test_the_roll_forward_reconciles_to_the_ledger_for_random_ledgers(loyalty_engine, client, seed):
    rng = random.Random(seed)
    customer = f"c-{uuid.uuid4().hex[:10]}"
    entries = [Entry(customer_id=customer, kind=rng.choice(KINDS), points=rng.randint(-5000, 5000), rule="test",
                     cause_event_id=str(uuid.uuid4()), at=T0 + timedelta(hours=rng.randint(0, 24 * 365)))
               for _ in range(rng.randint(1, 80))]
    async with loyalty_engine.begin() as conn:
        await ledger.append(conn, entries)
    cuts = sorted(T0 + timedelta(hours=rng.randint(-24, 24 * 366)) for _ in range(4))
    cuts = sorted(set(cuts))
    periods = [await roll(client, lo, hi) for lo, hi in zip(cuts, cuts[1:], strict=False)]
    for (lo, hi), period in zip(zip(cuts, cuts[1:], strict=False), periods, strict=False):
        assert period["opening"] == await ledger_sum_before(loyalty_engine, lo)
        assert period["closing"] == await ledger_sum_before(loyalty_engine, hi)
        assert (period["opening"] + period["issued"] - period["redeemed"] - period["expired"]
                + sum(period["adjustments"].values())) == period["closing"]
    assert all(p["closing"] == q["opening"] for p, q in zip(periods, periods[1:], strict=False))


async def test_a_period_must_have_a_positive_length_and_a_zone(client):
    assert (await client.get("/v1/admin/finance/roll-forward",
                             params={"from": T0.isoformat(), "to": T0.isoformat()})).status_code == 400
    assert (await client.get("/v1/admin/finance/roll-forward",
                             params={"from": "2031-01-01T00:00:00", "to": T0.isoformat()})).status_code in (400, 422)


async def test_the_liability_is_net_of_the_breakage_of_mature_cohorts(loyalty_engine, client, clock):
    earned = datetime(2024, 1, 10, tzinfo=UTC)
    clock[0] = earned
    rules = {"version": f"finance-{uuid.uuid4().hex[:6]}", "pending_days": 0, "stage_reached": {},
             "expiry": {"kind": "after_days", "count": 30}}
    assert (await client.put("/v1/admin/rules", json=rules)).status_code == 200
    assert (await client.put("/v1/admin/finance/settings", json={
        "currency": "USD", "value_per_point": {"USD": "0.01", "EUR": "0.009"},
        "breakage_fallback": "0.2"})).status_code == 200
    ann, bob = (f"c-{uuid.uuid4().hex[:10]}" for _ in range(2))
    await apply(loyalty_engine, [order_event(c, "order_completed", "o1", at=earned, revenue=1000) for c in (ann, bob)])
    assert (await client.get("/v1/admin/finance/liability")).json()["breakage_method"] == "fallback"
    reward = f"r-{uuid.uuid4().hex[:8]}"
    assert (await client.put(f"/v1/admin/rewards/{reward}", json={"name": "off", "kind": "discount_code",
                                                                   "cost": 600})).status_code == 200
    clock[0] = earned + timedelta(days=5)
    answer = await client.post(f"/v1/customers/{ann}/redemptions", json={"reward_id": reward},
                               headers={"Idempotency-Key": str(uuid.uuid4()), "authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 201, answer.text
    clock[0] = earned + timedelta(days=45)
    await expire_once(loyalty_engine, now=clock[0])  # 400 of ann's, 1000 of bob's expire
    later = earned + timedelta(days=50)
    await apply(loyalty_engine, [order_event(ann, "order_completed", "o2", at=later, revenue=250)])
    clock[0] = later
    body = (await client.get("/v1/admin/finance/liability")).json()
    january = next(c for c in body["cohorts"] if c["month"] == "2024-01")
    assert january == {"month": "2024-01", "earned": 2000, "expired": 1400, "remaining": 0, "mature": True}
    assert body["breakage_method"] == "mature_cohorts" and Decimal(body["breakage_rate"]) == Decimal("0.7")
    assert {"month": "2024-03", "points": 250, "lots": 1} in body["expiring_by_month"]
    outstanding = body["outstanding_points"]
    assert outstanding == await ledger_sum_before(loyalty_engine, later)
    assert Decimal(body["liability"]["USD"]) == (Decimal(outstanding) * Decimal("0.01") * Decimal("0.3")).quantize(
        Decimal("0.01"))
    assert set(body["liability"]) == {"EUR", "USD"}


async def test_the_finance_page_is_served_without_a_token_and_holds_no_data(client):
    page = await client.get("/finance", headers={"authorization": ""})
    assert page.status_code == 200 and "finance.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = await client.get("/finance/static/finance.js", headers={"authorization": ""})
    assert script.status_code == 200 and "/v1/admin/finance/roll-forward" in script.text
