"""RFM: recency, frequency and monetary scores, and the named segments of the R × FM grid. Pure.

Scores are 1-5, 5 being the best: the most recent, the most orders, the most revenue. By default:
- R and M are quintiles of the customers scored together. A buyer's quintile is that of their mid-rank
  r̄ among n, ceil(5·(r̄ − ½)/n): customers who tie score the same, whatever their ids, and a shop's
  only buyer, or buyers all alike, score 3.
- F is the order count on fixed cuts (`ORDER_CUTS`): 1 order scores 1, 2 orders 2, 3 orders 3, 4-5
  orders 4, 6 or more 5. Quintiles of order counts mean nothing in a shop where most buyers ordered
  once: those tie, share a mid-rank quintile (2 or 3), and no buyer could ever have F 1, so the
  segments of FM 1 ("New", "Promising") could never fill. An order count is also what a marketer reads.
A shop whose rhythm differs (groceries weekly, appliances once in years) sets fixed thresholds for all
three instead: `Thresholds(recency_days=(...), orders=(...), revenue=(...))`, four ascending cut points each.

FM is the mean of F and M rounded half up. The segments (rows R, columns FM):

| R \\ FM | 1 | 2 | 3 | 4 | 5 |
|---|---|---|---|---|---|
| 5 | New | Potential loyalist | Potential loyalist | Champions | Champions |
| 4 | Promising | Potential loyalist | Potential loyalist | Loyal | Champions |
| 3 | About to sleep | About to sleep | Need attention | Loyal | Loyal |
| 2 | Hibernating | Hibernating | At risk | At risk | Can't lose them |
| 1 | Lost | Lost | At risk | At risk | Can't lose them |
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

ROWS = {  # R -> the segment for FM 1..5
    5: ("New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Champions"),
    3: ("About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"),
    2: ("Hibernating", "Hibernating", "At risk", "At risk", "Can't lose them"),
    1: ("Lost", "Lost", "At risk", "At risk", "Can't lose them"),
}
SEGMENTS = tuple(dict.fromkeys(name for row in ROWS.values() for name in row))
# F by default: an order count above the k-th cut scores k + 1 (1, 2, 3, 4-5, 6+ orders score 1..5).
ORDER_CUTS = (1.0, 2.0, 3.0, 5.0)


@dataclass(frozen=True)
class Buyer:
    customer_id: str
    last_order_at: datetime
    orders: int
    revenue: Decimal


@dataclass(frozen=True)
class Thresholds:
    """Fixed cut points, four ascending each: a value above the k-th cut scores k + 1 (recency reversed:
    fewer days than the k-th cut from the top scores higher)."""

    recency_days: tuple[float, float, float, float]
    orders: tuple[float, float, float, float]
    revenue: tuple[float, float, float, float]


@dataclass(frozen=True)
class Score:
    recency_days: float
    r: int
    f: int
    m: int

    @property
    def fm(self) -> int:
        return (self.f + self.m + 1) // 2  # the mean, rounded half up

    @property
    def segment(self) -> str:
        return segment(self.r, self.fm)


def segment(r: int, fm: int) -> str:
    return ROWS[r][fm - 1]


def scores(buyers: Sequence[Buyer], *, as_of: datetime, thresholds: Thresholds | None = None) -> dict[str, Score]:
    """Each buyer's scores as of a moment (buyers: customers with at least one order)."""
    ordered = sorted(buyers, key=lambda b: b.customer_id)
    recency = [(as_of - b.last_order_at).total_seconds() / 86400 for b in ordered]
    if thresholds is None:
        r = _quintiles([-days for days in recency])
        f = [_fixed(b.orders, ORDER_CUTS) for b in ordered]
        m = _quintiles([float(b.revenue) for b in ordered])
    else:
        r = [6 - _fixed(days, thresholds.recency_days) for days in recency]
        f = [_fixed(b.orders, thresholds.orders) for b in ordered]
        m = [_fixed(float(b.revenue), thresholds.revenue) for b in ordered]
    return {b.customer_id: Score(recency_days=days, r=r_, f=f_, m=m_)
            for b, days, r_, f_, m_ in zip(ordered, recency, r, f, m, strict=True)}


def _quintiles(values: list[float]) -> list[int]:
    """The quintile of each value's mid-rank (ties share it): ceil(5·(first + last − 1) / 2n) for a tie group
    at 1-based positions first..last, in integers (as pandas: ceil(5·(rank(method="average") − ½)/n))."""
    n = len(values)
    order = sorted(range(n), key=lambda i: values[i])
    quintile = [0] * n
    first = 0
    while first < n:
        last = first
        while last + 1 < n and values[order[last + 1]] == values[order[first]]:
            last += 1
        score = -(-5 * (first + last + 1) // (2 * n))  # positions first+1..last+1: 5·(2r̄ − 1)/2n, ceiling
        for position in range(first, last + 1):
            quintile[order[position]] = score
        first = last + 1
    return quintile


def _fixed(value: float, cuts: tuple[float, ...]) -> int:
    return 1 + sum(value > cut for cut in cuts)


def movement(before: Mapping[str, str], after: Mapping[str, str]) -> Counter[tuple[str | None, str | None]]:
    """How many customers moved from which segment to which between two scorings (customer -> segment;
    None: not scored then). Customers who stayed in their segment are not counted."""
    return Counter((before.get(c), after.get(c)) for c in before.keys() | after.keys() if before.get(c) != after.get(c))


def sizes(scored: Mapping[str, Any]) -> dict[str, int]:
    """Customers per segment, every segment named (scored: customer -> anything with a `segment`)."""
    counted = Counter(score.segment for score in scored.values())
    return {name: counted.get(name, 0) for name in SEGMENTS}
