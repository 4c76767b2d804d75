"""Loyalty's lots against real PostgreSQL: earned points pending then available, expired by the worker on
an injected clock, the database refusing a lot below zero, the balance API counting all of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_loyalty.db import ledger, lots
from lifecycle_loyalty.main import create_app
from lifecycle_loyalty.workers.expiry import expire_once, warn_once
from sqlalchemy.exc import IntegrityError

from tests.support.in_process import running
from tests.support.loyalty import announced, apply, loyalty_settings, order_event

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TOKEN = "loyalty-lots-test-token-0b7c1e2d9a"


@pytest.fixture
def engine(loyalty_engine):
    return loyalty_engine


def customer() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


async def test_an_order_earns_a_pending_lot_that_the_balance_api_shows_as_time_passes(namespace, engine):
    ann = customer()
    await apply(engine, [order_event(ann, "order_completed", "o1", at=T0, revenue=80)])
    now = [T0 + timedelta(days=1)]
    app_settings = loyalty_settings(namespace, api_tokens=TOKEN)
    async with running(create_app(app_settings, clock=lambda: now[0])) as client:
        headers = {"authorization": f"Bearer {TOKEN}"}
        first = (await client.get(f"/v1/customers/{ann}/balance", headers=headers)).json()
        now[0] = T0 + timedelta(days=14)
        later = (await client.get(f"/v1/customers/{ann}/balance", headers=headers)).json()
        rows = (await client.get(f"/v1/customers/{ann}/ledger", headers=headers)).json()
    assert (first["balance"], first["pending"], first["available"], first["debt"]) == (80, 80, 0, 0)
    assert (later["balance"], later["pending"], later["available"]) == (80, 0, 80)
    assert [(r["kind"], r["points"], r["rule_version"], r["effective_at"] is not None, r["lot_id"] is not None)
            for r in rows] == [("earn", 80, "default-v1", True, True)]


async def test_the_expiry_worker_expires_due_lots_once_and_a_refund_then_takes_nothing_back(engine):
    ann = customer()
    await apply(engine, [order_event(ann, "order_completed", "o1", at=T0, revenue=80)])
    async with engine.begin() as conn:  # give the lot a policy: the default never expires
        await conn.exec_driver_sql("UPDATE lots SET expires_at = $1 WHERE customer_id = $2",
                                   (T0 + timedelta(days=30), ann))
    assert await warn_once(engine, now=T0 + timedelta(days=10), topic="t", limit=10_000) >= 0  # 20 days ahead
    assert await announced(engine, ann) == []
    await warn_once(engine, now=T0 + timedelta(days=20), topic="t", limit=10_000)  # 14 days ahead: announced
    await warn_once(engine, now=T0 + timedelta(days=21), topic="t", limit=10_000)  # once
    warnings = [(e["type"], e["data"]["points"], e["data"]["expires_at"]) for e in await announced(engine, ann)]
    assert warnings == [("loyalty.points_expiring", 80, "2026-04-09T12:00:00Z")]
    assert await expire_once(engine, now=T0 + timedelta(days=29), rule_version="v1", limit=10_000) >= 0
    async with engine.connect() as conn:
        assert (await ledger.balance(conn, customer_id=ann))["balance"] == 80
    await expire_once(engine, now=T0 + timedelta(days=30), rule_version="v1", limit=10_000)
    await expire_once(engine, now=T0 + timedelta(days=31), rule_version="v1", limit=10_000)  # nothing left
    await apply(engine, [order_event(ann, "order_refunded", "o1", at=T0 + timedelta(days=40))])
    async with engine.connect() as conn:
        entries = [(e["kind"], e["points"]) for e in await ledger.entries(conn, customer_id=ann)]
        held = await lots.holdings(conn, ann)
    assert entries == [("earn", 80), ("expire", -80)]
    assert held.debt == 0 and held.lots == ()


async def test_the_database_refuses_a_lot_holding_less_than_nothing(engine):
    ann = customer()
    await apply(engine, [order_event(ann, "order_completed", "o1", at=T0, revenue=5)])
    with pytest.raises(IntegrityError, match="lots_remaining_within_points"):
        async with engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE lots SET remaining = remaining - 6 WHERE customer_id = $1", (ann,))
    with pytest.raises(IntegrityError, match="accounts_debt_not_negative"):
        async with engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE accounts SET debt = -1 WHERE customer_id = $1", (ann,))
