"""IFRS 15, Illustrative Examples, Example 52 (customer loyalty programme), reproduced through loyalty's API
against real PostgreSQL: the sales go through the real order handler, the redemptions through
`POST /v1/customers/{id}/redemptions`, the estimates through `PUT /v1/admin/finance/settings`; the figures
are read from `GET /v1/admin/finance/deferred-revenue`. Alone in its module: the figures cover every sale of
the database, so no other test may share it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lifecycle_loyalty.main import create_app

from tests.support.in_process import running
from tests.support.loyalty import apply, loyalty_settings, order_event

Y1, Y2, Y3 = (datetime(year, 1, 1, tzinfo=UTC) for year in (2025, 2026, 2027))
TOKEN = "loyalty-ifrs15-token-7c2e9b40a1d3"
ADMIN = "loyalty-ifrs15-admin-5a8f1e62d0b7"
ESTIMATE = {"currency": "JPY", "decimals": 0, "value_per_point": {"JPY": "1.00"}, "breakage_fallback": "0.05"}
RULES = {"version": "ifrs15-example-52", "default_currency": "JPY",
         "currencies": {"JPY": {"points": 1, "per": 10, "zero_decimal": True}},
         "expiry": {"kind": "never"}, "stage_reached": {}}


@pytest.fixture
def clock():
    return [Y1]


@pytest.fixture
async def client(namespace, clock):
    app_settings = loyalty_settings(namespace, api_tokens=TOKEN, admin_token=ADMIN)
    async with running(create_app(app_settings, clock=lambda: clock[0])) as client:
        client.headers["authorization"] = f"Bearer {TOKEN}"
        yield client


def admin(client, method: str, path: str, **kwargs):
    return client.request(method, path, headers={"authorization": f"Bearer {ADMIN}"}, **kwargs)


async def figures(client, start: datetime, end: datetime) -> dict:
    answer = await admin(client, "GET", "/v1/admin/finance/deferred-revenue",
                         params={"from": start.isoformat(), "to": end.isoformat()})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_example_52_customer_loyalty_programme(loyalty_engine, client, clock):
    assert (await admin(client, "PUT", "/v1/admin/rules", json=RULES)).status_code == 200
    # Year 1: the points' stand-alone selling price is 1 CU a point, 95% expected to be redeemed.
    answer = await admin(client, "PUT", "/v1/admin/finance/settings",
                         json={**ESTIMATE, "expected_redemption_rate": "0.95"})
    assert answer.status_code == 200, answer.text
    # Sales of 100,000 CU earn 10,000 points (1 point per 10 CU), here ten customers' orders.
    customers = [f"c-{uuid.uuid4().hex[:10]}" for _ in range(10)]
    await apply(loyalty_engine, [order_event(c, "order_completed", "o1", at=Y1 + timedelta(hours=1), revenue=10_000,
                                             currency="JPY") for c in customers])
    reward = f"r-{uuid.uuid4().hex[:8]}"
    assert (await admin(client, "PUT", f"/v1/admin/rewards/{reward}",
                        json={"name": "500 off", "kind": "discount_code", "cost": 500})).status_code == 200

    async def redeem(times: int, at: datetime) -> None:
        clock[0] = at
        for i in range(times):
            answer = await client.post(f"/v1/customers/{customers[i % 10]}/redemptions", json={"reward_id": reward},
                                       headers={"Idempotency-Key": str(uuid.uuid4())})
            assert answer.status_code == 201, answer.text

    await redeem(9, Y1 + timedelta(days=200))  # 4,500 points redeemed in year 1
    year1 = await figures(client, Y1, Y2)
    assert Decimal(year1["closing"]["sales"]) == 100_000
    assert Decimal(year1["closing"]["allocated_to_goods"]) == 91_324
    assert Decimal(year1["allocated_to_points"]) == 8_676
    assert year1["closing"]["points_issued"] == 10_000 and year1["closing"]["points_redeemed"] == 4_500
    assert Decimal(year1["closing"]["expected_redemptions"]) == 9_500
    assert Decimal(year1["revenue_recognised"]) == 4_110
    assert Decimal(year1["closing"]["contract_liability"]) == 4_566

    # Year 2: 4,000 more points redeemed (8,500 in all); the estimate is revised to 9,700 points.
    clock[0] = Y2 + timedelta(days=100)
    assert (await admin(client, "PUT", "/v1/admin/finance/settings",
                        json={**ESTIMATE, "expected_redemption_rate": "0.97"})).status_code == 200
    await redeem(8, Y2 + timedelta(days=200))
    year2 = await figures(client, Y2, Y3)
    assert year2["closing"]["points_redeemed"] == 8_500
    assert Decimal(year2["closing"]["expected_redemptions"]) == 9_700
    assert Decimal(year2["closing"]["recognised"]) == 7_603
    assert Decimal(year2["revenue_recognised"]) == 3_493
    assert Decimal(year2["allocated_to_points"]) == 0  # the allocation at sale never changes
    assert Decimal(year2["closing"]["contract_liability"]) == 8_676 - 7_603
    # Year 1 as reported before stays what it was: the revision takes effect from its date.
    assert await figures(client, Y1, Y2) == year1
