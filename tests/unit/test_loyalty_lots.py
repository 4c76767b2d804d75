"""Loyalty's lots, as pure functions: pending then available, oldest spent first, expiry per policy, a
refund after spending becoming debt settled from later credits, points given back to their lots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lifecycle_loyalty.domain.earning import Entry, ExpiryPolicy, LotPolicy, OrderState, decide_order_entry
from lifecycle_loyalty.domain.lots import Holdings, Summary, expire, give_back, post, post_all, spend, summarize

T0 = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
POLICY = LotPolicy(pending=timedelta(days=14), expiry=ExpiryPolicy("after_days", 365))


def earn(points: int, order: str | None, *, days: int = 0) -> Entry:
    return Entry(customer_id="ann", kind="earn", points=points, rule="purchase", rule_version="v1",
                 cause_event_id=f"e-{order}-{days}", order_id=order, at=T0 + timedelta(days=days))


def reverse(points: int, order: str | None) -> Entry:
    return Entry(customer_id="ann", kind="reverse", points=-points, rule="refund_reversal", rule_version="v1",
                 cause_event_id=f"r-{order}", order_id=order)


def spending(points: int, key: str = "s1") -> Entry:
    return Entry(customer_id="ann", kind="spend", points=-points, rule="redemption", rule_version="v1",
                 cause_event_id=key)


def invariants(held: Holdings, entries: list[Entry]) -> None:
    assert all(0 <= lot.remaining <= lot.points for lot in held.lots)
    assert held.debt >= 0
    assert sum(e.points for e in entries) == sum(lot.remaining for lot in held.lots) - held.debt
    assert sum(e.debt for e in entries) == held.debt


@pytest.mark.parametrize(("policy", "expires"), [
    (ExpiryPolicy("never"), None),
    (ExpiryPolicy("after_days", 30), datetime(2026, 4, 9, 15, 30, tzinfo=UTC)),
    (ExpiryPolicy("end_of_month", 0), datetime(2026, 4, 1, tzinfo=UTC)),  # the end of the earning month
    (ExpiryPolicy("end_of_month", 1), datetime(2026, 5, 1, tzinfo=UTC)),  # the end of the month after it
    (ExpiryPolicy("end_of_month", 10), datetime(2027, 2, 1, tzinfo=UTC)),  # across a year end
    (ExpiryPolicy("end_of_year", 0), datetime(2027, 1, 1, tzinfo=UTC)),
    (ExpiryPolicy("end_of_year", 1), datetime(2028, 1, 1, tzinfo=UTC)),  # the end of the year after earning
])
def test_expiry_policies(policy, expires):
    assert policy.expires_at(T0) == expires


def test_earned_points_are_pending_then_available_then_expire():
    posting = post(Holdings("ann"), earn(100, "o1"), at=T0, policy=POLICY)
    held = posting.holdings
    assert summarize(held, T0 + timedelta(days=13)) == summarize(held, T0)
    assert (summarize(held, T0).pending, summarize(held, T0).available) == (100, 0)
    assert (summarize(held, T0 + timedelta(days=14)).pending, summarize(held, T0 + timedelta(days=14)).available) == (
        0, 100)
    assert expire(held, now=T0 + timedelta(days=364), rule_version="v1").entries == []
    expired = expire(held, now=T0 + timedelta(days=365), rule_version="v1")
    assert [(e.kind, e.points, e.order_id) for e in expired.entries] == [("expire", -100, "o1")]
    invariants(expired.holdings, posting.entries + expired.entries)


def test_spending_takes_the_oldest_available_lots_first_and_never_pending_ones():
    posting = post_all(Holdings("ann"), [earn(50, "o2", days=5), earn(30, "o1"), earn(40, "o3", days=20)],
                       at=T0, policy=POLICY)
    now = T0 + timedelta(days=25)  # o1 and o2 available, o3 pending
    assert spend(posting.holdings, spending(81), now=now) is None
    spent = spend(posting.holdings, spending(60), now=now)
    assert spent is not None
    taken = [(posting.holdings.lot(lot_id).order_id, points) for lot_id, points in spent.taken]
    assert taken == [("o1", 30), ("o2", 30)]
    assert summarize(spent.holdings, now) == Summary(
        pending=40, available=20, debt=0, balance=60)
    invariants(spent.holdings, posting.entries + spent.entries)


def test_a_refund_after_spending_becomes_debt_settled_from_later_earnings():
    posting = post_all(Holdings("ann"), [earn(100, "o1"), earn(10, "o2")], at=T0, policy=POLICY)
    now = T0 + timedelta(days=15)
    spent = spend(posting.holdings, spending(80), now=now)
    assert spent is not None
    refund = post(spent.holdings, reverse(100, "o1"), at=now, policy=POLICY)
    assert [(e.kind, e.points, e.debt) for e in refund.entries] == [("reverse", -30, 0), ("debt", -70, 70)]
    assert summarize(refund.holdings, now) == Summary(
        pending=0, available=0, debt=70, balance=-70)  # o2's 10 points stay held but do not pay the debt
    assert spend(refund.holdings, spending(1, "s2"), now=now) is None
    later = post(refund.holdings, earn(100, "o3", days=20), at=now, policy=POLICY)
    assert [(e.kind, e.points, e.debt) for e in later.entries] == [("earn", 100, 0), ("settlement", 0, -70)]
    assert later.holdings.debt == 0
    assert later.holdings.lot(later.entries[0].lot_id or "").remaining == 30
    invariants(later.holdings, posting.entries + spent.entries + refund.entries + later.entries)


def test_cancelled_spending_goes_back_to_its_lots_with_their_expiry():
    posting = post_all(Holdings("ann"), [earn(30, "o1"), earn(30, "o2", days=1)], at=T0, policy=POLICY)
    now = T0 + timedelta(days=20)
    spent = spend(posting.holdings, spending(40), now=now)
    assert spent is not None
    back = give_back(spent.holdings, Entry(customer_id="ann", kind="refund_spend", points=40, rule="cancellation",
                                           rule_version="v1", cause_event_id="s1"), spent.taken)
    assert back.holdings == posting.holdings
    invariants(back.holdings, posting.entries + spent.entries + back.entries)


def order(*, amount="80", refunded=None, held=0, expired=0) -> OrderState:
    return OrderState(customer_id="ann", order_id="o1", amount=Decimal(amount), completed_event_id="c1",
                      refunded_event_id=refunded, held=held, expired=expired)


@pytest.mark.parametrize(("state", "expected"), [
    (order(held=50, expired=30), None),  # what expired is not earned again
    (order(refunded="r1", held=50, expired=30), ("reverse", -50)),  # a refund takes back what is still held
    (order(refunded="r1", held=0, expired=80), None),  # all of it expired: nothing to take back
])
def test_expired_points_stay_expired(state, expected):
    entry = decide_order_entry(state)
    assert (entry and (entry.kind, entry.points)) == expected


def refunded(part: str | None, *, held: int = 80, amount: str = "80") -> OrderState:
    return OrderState(customer_id="ann", order_id="o1", amount=Decimal(amount), completed_event_id="c1",
                      refunded_event_id="r1", held=held, refunded_part=None if part is None else Decimal(part))


@pytest.mark.parametrize(("state", "expected"), [
    (refunded(None), ("reverse", -80)),  # refunded whole
    (refunded("20"), ("reverse", -20)),  # a quarter refunded: a quarter of the points back
    (refunded("20", held=60), None),  # already reversed
    (refunded("60", held=60), ("reverse", -40)),  # a second partial refund: 60 of 80 refunded in all
    (refunded("80", held=60), ("reverse", -60)),  # everything refunded in parts
    (refunded("500", held=60), ("reverse", -60)),  # more than the order: everything
    (refunded("0.01", amount="0.99", held=0), None),  # an order below a point
    (refunded("33.33", amount="100", held=100), ("reverse", -34)),  # keeps floor(100 * 66.67 / 100) = 66
])
def test_partial_refunds_reverse_in_proportion(state, expected):
    entry = decide_order_entry(state)
    assert (entry and (entry.kind, entry.points)) == expected
