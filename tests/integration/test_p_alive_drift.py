"""P(alive) feeds the drift rules: with `drift.at_risk_below_p_alive` set, the analytics refresh moves
the buyers the purchase model has given up on to at-risk (stored and announced once), and their next
order reactivates them. Without the rule, the refresh moves nobody (the control)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lifecycle_stage_engine.analytics import scoring
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES
from lifecycle_stage_engine.workers import analytics as worker
from sqlalchemy import text

from tests.support.drift_rules import WATCHFUL
from tests.support.generated_shop import NOW, shop
from tests.support.shops import bgnbd_shop, order_events
from tests.support.stage_engine import announced, deliver, ev, history


@pytest.fixture(scope="module")
async def filled(namespace, engine):
    # The generated shop, and buyers simulated from the models' assumptions: the fit is well determined.
    events = shop(seed=23, customers=90) + order_events(bgnbd_shop(200, as_of=NOW, seed=23), ev)
    for start in range(0, len(events), 50):
        await deliver(namespace, engine, events[start:start + 50], now=NOW)
    return engine


async def low_p_alive_moves(engine) -> list:
    async with engine.connect() as conn:
        return (await conn.execute(text(
            "SELECT p.customer_id, t.from_stage, t.to_stage, t.event_time FROM transitions t "
            "JOIN profiles p ON p.id = t.profile_id WHERE t.reason = 'low_p_alive' AND t.superseded_at IS NULL"))).all()


async def test_buyers_the_model_gave_up_on_become_at_risk_once_and_an_order_brings_them_back(filled, namespace,
                                                                                           topic):
    pool = worker.executor()
    try:
        control = await worker.refresh(filled, pool, now=NOW, options=scoring.Options(), rules=DEFAULT_RULES,
                                       topic=topic)
        assert control["moved_by_p_alive"] == 0 and await low_p_alive_moves(filled) == []
        async with filled.connect() as conn:
            # Doubted buyers still on the journey whose days rule is not due yet (a due one is the sweeper's move).
            expected = {row.customer_id for row in await conn.execute(text(
                "SELECT s.customer_id FROM customer_scores s JOIN profiles p ON p.id = s.profile_id "
                "WHERE (s.document->>'p_alive')::float < 0.6 AND p.stage IN ('purchase', 'retention', 'loyalty') "
                "AND (p.due_at IS NULL OR p.due_at > :at)"), {"at": NOW + timedelta(minutes=1)})}
        assert expected, "the generated shop has buyers the model doubts"

        first = await worker.refresh(filled, pool, now=NOW + timedelta(minutes=1), options=scoring.Options(),
                                     rules=WATCHFUL, topic=topic)
        moves = await low_p_alive_moves(filled)
        assert first["moved_by_p_alive"] == len(expected) == len(moves)
        assert {m.customer_id for m in moves} == expected and {m.to_stage for m in moves} == {"at_risk"}
        events = await announced(filled, topic, sorted(expected))
        assert sorted(e["data"]["customer_id"] for e in events if e["data"].get("reason") == "low_p_alive") == sorted(
            expected)

        again = await worker.refresh(filled, pool, now=NOW + timedelta(minutes=2), options=scoring.Options(),
                                     rules=WATCHFUL, topic=topic)
        assert again["moved_by_p_alive"] == 0 and len(await low_p_alive_moves(filled)) == len(moves)
    finally:
        pool.shutdown()

    customer = sorted(expected)[0]
    await deliver(namespace, filled, [ev("track", NOW + timedelta(days=1), event="Order Completed", userId=customer,
                                         properties={"order_id": "comeback", "revenue": 30})],
                  now=NOW + timedelta(days=1), rules=WATCHFUL)
    last = (await history(filled, customer))[-1]
    assert (last["from_stage"], last["reason"]) == ("at_risk", "reactivated")
