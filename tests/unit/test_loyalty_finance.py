"""Loyalty's finance computations, pure: the roll-forward reconciles to the ledger for random ledgers; breakage
by mature cohort; IFRS 15 Example 52's figures; rounding half up, once."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from lifecycle_loyalty.domain.finance import (
    Cohort,
    FinanceSettings,
    Sale,
    breakage,
    deferred_revenue,
    liability,
    points_share,
    recognised,
    roll_forward,
)

KINDS = ("earn", "bonus", "spend", "refund_spend", "expire", "reverse", "adjust", "move_in", "move_out", "debt",
         "settlement")
entry = st.tuples(st.sampled_from(KINDS), st.integers(-10**9, 10**9), st.integers(0, 1000))  # kind, points, time


def sums(entries, lo, hi) -> dict[str, int]:
    by_kind: Counter[str] = Counter()
    for kind, points, at in entries:
        if (lo is None or at >= lo) and at < hi:
            by_kind[kind] += points
    return dict(by_kind)


@given(st.lists(entry, max_size=60), st.integers(0, 1000), st.integers(0, 1000))
def test_the_roll_forward_closes_on_the_sum_of_the_entries_before_its_end(entries, a, b):
    start, end = min(a, b), max(a, b)
    rf = roll_forward(sums(entries, None, start), sums(entries, start, end))
    assert rf.opening == sum(p for _, p, at in entries if at < start)
    assert rf.closing == sum(p for _, p, at in entries if at < end)
    assert rf.opening + rf.issued - rf.redeemed - rf.expired + sum(rf.adjustments.values()) == rf.closing
    assert rf.issued == sum(p for k, p, at in entries if k in ("earn", "bonus") and start <= at < end)


@given(st.lists(entry, max_size=40), st.lists(st.integers(0, 1000), min_size=2, max_size=6, unique=True))
def test_consecutive_periods_chain(entries, cuts):
    cuts = sorted(cuts)
    periods = [roll_forward(sums(entries, None, lo), sums(entries, lo, hi))
               for lo, hi in zip(cuts, cuts[1:], strict=False)]
    assert all(p.closing == q.opening for p, q in zip(periods, periods[1:], strict=False))


def test_merges_net_to_zero_and_show_as_adjustments():
    rf = roll_forward({}, {"earn": 100, "move_out": -100, "move_in": 100, "expire": -10})
    assert (rf.issued, rf.expired, rf.adjustments, rf.closing) == (100, 10, {"move_in": 100, "move_out": -100}, 90)


def test_breakage_is_the_expired_share_of_mature_cohorts_else_the_fallback():
    young = Cohort(month="2026-05", earned=1000, expired=0, remaining=1000, mature=False)
    assert breakage([young], Decimal("0.05")).method == "fallback"
    mature = [Cohort(month="2025-01", earned=1000, expired=100, remaining=0, mature=True),
              Cohort(month="2025-02", earned=3000, expired=500, remaining=0, mature=True)]
    estimate = breakage([*mature, young], Decimal("0.05"))
    assert (estimate.rate, estimate.method, estimate.mature_points) == (Decimal("0.15"), "mature_cohorts", 4000)
    assert liability(10_000, Decimal("0.01"), estimate.rate, 2) == Decimal("85.00")


def test_rounding_is_half_up_once():
    assert liability(1, Decimal("0.005"), Decimal(0), 2) == Decimal("0.01")
    assert recognised(Decimal(8676), 4500, Decimal(9500), 0) == 4110


def test_ifrs15_example_52():
    year1 = FinanceSettings(currency="JPY", decimals=0, value_per_point={"JPY": Decimal(1)},
                            expected_redemption_rate=Decimal("0.95"))
    year2 = year1.model_copy(update={"expected_redemption_rate": Decimal("0.97")})
    assert round(points_share(Decimal(100_000), 10_000, Decimal(1), Decimal("0.95"))) == 8676
    sale = [Sale(price=Decimal(100_000), points=10_000, settings=year1)]
    end1 = deferred_revenue(sale, 4500, year1)
    assert (end1.allocated_to_goods, end1.allocated_to_points, end1.recognised) == (91_324, 8_676, 4_110)
    end2 = deferred_revenue(sale, 8500, year2)
    assert (end2.allocated_to_points, end2.expected_redemptions, end2.recognised) == (8_676, 9_700, 7_603)
    assert end2.recognised - end1.recognised == 3_493


@given(st.lists(st.tuples(st.integers(1, 10**7), st.integers(0, 10**5)), min_size=1, max_size=20),
       st.integers(0, 10**6))
def test_goods_and_points_add_up_to_the_sales_and_recognition_never_exceeds_the_allocation(orders, redeemed):
    settings = FinanceSettings()
    position = deferred_revenue([Sale(price=Decimal(p) / 100, points=n, settings=settings) for p, n in orders],
                                redeemed, settings)
    assert position.allocated_to_goods + position.allocated_to_points == position.sales
    assert 0 <= position.recognised <= position.allocated_to_points
