"""RFM scores and segments: pure, no I/O. (The comparison with a pandas computation on generated
data is in test_rfm_against_pandas.py.)"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lifecycle_stage_engine.analytics.rfm import (
    ROWS,
    SEGMENTS,
    Buyer,
    Score,
    Thresholds,
    movement,
    scores,
    segment,
    sizes,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def buyer(name: str, days_ago: float, orders: int, revenue: str) -> Buyer:
    return Buyer(customer_id=name, last_order_at=NOW - timedelta(days=days_ago), orders=orders,
                 revenue=Decimal(revenue))


def test_the_grid_names_every_cell_with_the_eleven_segments():
    assert sorted(ROWS) == [1, 2, 3, 4, 5] and all(len(row) == 5 for row in ROWS.values())
    assert set(SEGMENTS) == {"Champions", "Loyal", "Potential loyalist", "New", "Promising", "Need attention",
                             "About to sleep", "At risk", "Can't lose them", "Hibernating", "Lost"}


@pytest.mark.parametrize(("r", "fm", "expected"), [
    (5, 5, "Champions"), (5, 1, "New"), (4, 1, "Promising"), (3, 3, "Need attention"), (1, 5, "Can't lose them"),
    (1, 1, "Lost"), (2, 2, "Hibernating"), (2, 4, "At risk"), (3, 4, "Loyal"), (4, 3, "Potential loyalist"),
])
def test_segments_on_the_grid(r, fm, expected):
    assert segment(r, fm) == expected


@pytest.mark.parametrize(("f", "m", "fm"), [(1, 1, 1), (1, 2, 2), (2, 3, 3), (4, 5, 5), (5, 5, 5), (3, 4, 4)])
def test_fm_is_the_mean_rounded_half_up(f, m, fm):
    assert Score(recency_days=0, r=3, f=f, m=m).fm == fm


def test_quintiles_give_the_best_fifth_a_five():
    buyers = [buyer(f"c{i:02d}", days_ago=i * 10, orders=i + 1, revenue=str(100 * (i + 1))) for i in range(10)]
    scored = scores(buyers, as_of=NOW)
    assert [scored[f"c{i:02d}"].r for i in range(10)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]  # recent is good
    assert [scored[f"c{i:02d}"].m for i in range(10)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [scored[f"c{i:02d}"].f for i in range(10)] == [1, 2, 3, 4, 4, 5, 5, 5, 5, 5]  # order counts, not ranks
    assert scored["c00"].segment == "New" and scored["c09"].segment == "Can't lose them"
    assert scored["c03"].recency_days == 30


def test_fixed_thresholds_score_by_the_shops_own_cuts():
    cuts = Thresholds(recency_days=(7, 14, 30, 60), orders=(1, 2, 4, 8), revenue=(50, 100, 200, 500))
    scored = scores([buyer("weekly", 3, 12, "900"), buyer("gone", 90, 1, "20"), buyer("mid", 20, 3, "150")],
                    as_of=NOW, thresholds=cuts)
    assert (scored["weekly"].r, scored["weekly"].f, scored["weekly"].m) == (5, 5, 5)
    assert (scored["gone"].r, scored["gone"].f, scored["gone"].m, scored["gone"].segment) == (1, 1, 1, "Lost")
    assert (scored["mid"].r, scored["mid"].f, scored["mid"].m) == (3, 3, 3)


def test_movement_and_sizes_between_two_scorings():
    before = {"a": Score(0, 5, 5, 5), "b": Score(0, 3, 3, 3)}
    after = {"a": Score(0, 2, 5, 5), "b": Score(0, 3, 3, 3), "c": Score(0, 5, 1, 1)}
    segments = {name: {c: score.segment for c, score in scored.items()} for name, scored in (("before", before),
                                                                                          ("after", after))}
    assert movement(segments["before"], segments["after"]) == {("Champions", "Can't lose them"): 1, (None, "New"): 1}
    assert movement(segments["after"], {}) == {("Can't lose them", None): 1, ("Need attention", None): 1,
                                               ("New", None): 1}
    counted = sizes(after)
    assert counted["New"] == 1 and counted["Lost"] == 0 and sum(counted.values()) == 3


def test_a_shops_only_buyer_and_buyers_all_alike_score_in_the_middle_not_by_their_ids():
    """R and M in the middle (quintiles of ties); F is their order count."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    only = scores([Buyer("a", now - timedelta(hours=1), 1, Decimal(50))], as_of=now)["a"]
    assert (only.r, only.f, only.m, only.segment) == (3, 1, 3, "About to sleep")
    alike = scores([Buyer(name, now - timedelta(days=3), 3, Decimal(50)) for name in "edcba"], as_of=now)
    assert {(s.r, s.f, s.m) for s in alike.values()} == {(3, 3, 3)}


def test_a_shop_where_most_buyers_ordered_once_fills_new_and_promising():
    """Most buyers have one order: they score F 1 (not a shared mid-rank quintile), so the recent and
    cheap among them are "New" (R 5) and "Promising" (R 4)."""
    rng = random.Random(3)
    buyers = [buyer(f"c{i:03d}", days_ago=rng.uniform(0, 700), orders=1 if i % 10 < 7 else rng.randint(2, 9),
                    revenue=str(rng.randint(10, 400))) for i in range(300)]
    scored = scores(buyers, as_of=NOW)
    counted = sizes(scored)
    assert counted["New"] > 0 and counted["Promising"] > 0, counted
    assert all(s.f == 1 for c, s in scored.items() if s.segment in ("New", "Promising"))
    assert {scored[b.customer_id].f for b in buyers if b.orders == 1} == {1}


@pytest.mark.parametrize(("orders", "f"), [(1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (6, 5), (40, 5)])
def test_frequency_scores_the_order_count_on_fixed_cuts(orders, f):
    others = [buyer(f"o{i}", days_ago=i, orders=1, revenue="10") for i in range(9)]
    assert scores([buyer("x", 1, orders, "50"), *others], as_of=NOW)["x"].f == f
