"""Refunds against real PostgreSQL: an order refunded in parts reverses in proportion, whatever order the
refunds arrive in; points refunded after they were spent become debt, settled from the next earnings,
never a negative available balance; a guest's refunded order reverses the right points after a merge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_loyalty.db import ledger, lots
from lifecycle_loyalty.domain.earning import Entry
from lifecycle_loyalty.domain.lots import spend, summarize
from lifecycle_shared.events import IDENTITY_MERGED_TYPE, CloudEvent, IdentityMergedData

from tests.support.loyalty import announced, apply, order_event

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=20)


@pytest.fixture
def engine(loyalty_engine):
    return loyalty_engine


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def kinds(engine, customer: str) -> list[tuple[str, int, int]]:
    async with engine.connect() as conn:
        return [(e["kind"], e["points"], e["debt"]) for e in await ledger.entries(conn, customer_id=customer)]


async def summary(engine, customer: str):
    async with engine.connect() as conn:
        return summarize(await lots.holdings(conn, customer), NOW)


@pytest.mark.parametrize("reverse_arrival", [False, True])
async def test_partial_refunds_reverse_in_proportion_in_any_order(engine, reverse_arrival):
    ann = f"c-{uuid.uuid4().hex[:10]}"
    refunds = [order_event(ann, "order_refunded", "o1", at=at(5), revenue=20),
               order_event(ann, "order_refunded", "o1", at=at(9), revenue=40)]
    await apply(engine, [order_event(ann, "order_completed", "o1", at=at(0), revenue=80)])
    for refund in reversed(refunds) if reverse_arrival else refunds:
        await apply(engine, [refund])
    await apply(engine, [refunds[0]])  # redelivered under its id: the inbox drops it
    async with engine.connect() as conn:
        assert (await ledger.balance(conn, customer_id=ann))["balance"] == 20  # 60 of 80 refunded
    assert [k for k, *_ in await kinds(engine, ann)] == ["earn", "reverse", "reverse"]


async def test_a_refund_after_spending_becomes_debt_settled_from_the_next_earnings(engine):
    ann = f"c-{uuid.uuid4().hex[:10]}"
    await apply(engine, [order_event(ann, "order_completed", "o1", at=at(0), revenue=100)])
    async with engine.begin() as conn:  # spend 90 of it (what a redemption does, without the catalogue)
        held = (await lots.lock(conn, [ann]))[ann]
        spent = spend(held, Entry(customer_id=ann, kind="spend", points=-90, rule="test", cause_event_id="s1"),
                      now=NOW)
        assert spent is not None
        await lots.record(conn, held, spent)
    await apply(engine, [order_event(ann, "order_refunded", "o1", at=at(10), total=50)])  # half refunded
    assert await kinds(engine, ann) == [("earn", 100, 0), ("spend", -90, 0), ("reverse", -10, 0),
                                        ("debt", -40, 40)]
    state = await summary(engine, ann)
    assert (state.available, state.debt, state.balance) == (0, 40, -40)
    await apply(engine, [order_event(ann, "order_completed", "o2", at=at(20), revenue=30)])
    state = await summary(engine, ann)
    assert (state.available, state.debt, state.balance) == (0, 10, -10)  # the 30 earned all went to the debt
    await apply(engine, [order_event(ann, "order_completed", "o3", at=at(30), revenue=25)])
    state = await summary(engine, ann)
    assert (state.available, state.debt, state.balance) == (15, 0, 15)
    assert [k for k, *_ in await kinds(engine, ann)][-4:] == ["earn", "settlement", "earn", "settlement"]
    events = await announced(engine, ann)
    assert [(e["topic"], e["type"], e["data"]["points"], e["data"]["order_id"]) for e in events] == [
        ("loyalty-events.v1", "loyalty.debt_recorded", 40, "o1")]


async def test_a_guests_order_refunded_after_the_merge_and_after_spending_leaves_debt_on_the_account(engine):
    tag = uuid.uuid4().hex[:10]
    guest, user = f"anon-{tag}", f"user-{tag}"
    await apply(engine, [order_event(guest, "order_completed", "o1", at=at(0), revenue=80)])
    async with engine.begin() as conn:
        held = (await lots.lock(conn, [guest]))[guest]
        spent = spend(held, Entry(customer_id=guest, kind="spend", points=-50, rule="test", cause_event_id="s2"),
                      now=NOW)
        assert spent is not None
        await lots.record(conn, held, spent)
    data = IdentityMergedData(survivor_id=user, absorbed_id=guest, absorbed_ids=[guest], user_id=user,
                              reason="identify", cause_event_ids=["i"], event_time=at(1), processed_at=at(1))
    await apply(engine, [CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE,
                                    time=at(1), subject=user, data=data.model_dump(mode="json"))])
    await apply(engine, [order_event(guest, "order_refunded", "o1", at=at(2))])
    guest_state, user_state = await summary(engine, guest), await summary(engine, user)
    assert (guest_state.balance, guest_state.debt) == (0, 0)
    assert (user_state.balance, user_state.debt, user_state.available, user_state.pending) == (-50, 50, 0, 0)
