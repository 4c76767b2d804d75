"""Cohort retention: customers grouped by the month of their first purchase (and, if asked, by their
acquisition channel or source); for each later month, the share of the cohort that bought in it. Pure.

Month offsets count calendar months: an order in March by a January cohort is offset 2. Offset 0 is
the cohort month itself (everyone bought in it); the matrix starts at offset 1, "buying again".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Cohort:
    month: str  # "2026-01"
    group: str | None  # the acquisition channel or source, when grouped
    size: int
    buyers_by_offset: dict[int, int]  # offset (>= 1) -> customers of the cohort who bought in that month

    def share(self, offset: int) -> float:
        return self.buyers_by_offset.get(offset, 0) / self.size


def _month(time: datetime) -> tuple[int, int]:
    return time.year, time.month


def retention(orders: Iterable[tuple[str, datetime]], *, groups: Mapping[str, str] | None = None) -> list[Cohort]:
    """orders: (customer id, order time). groups: customer id -> group (channel or source); customers
    without one are in the group "(none)". Cohorts in month order (then group)."""
    months: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for customer, time in orders:
        months[customer].add(_month(time))
    members: dict[tuple[tuple[int, int], str | None], list[set[tuple[int, int]]]] = defaultdict(list)
    for customer, bought in months.items():
        group = (groups.get(customer) or "(none)") if groups is not None else None
        members[(min(bought), group)].append(bought)
    cohorts = []
    for ((year, month), group), bought_sets in sorted(members.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        counts: dict[int, int] = defaultdict(int)
        for bought in bought_sets:
            for y, m in bought:
                offset = (y - year) * 12 + (m - month)
                if offset >= 1:
                    counts[offset] += 1
        cohorts.append(Cohort(month=f"{year:04d}-{month:02d}", group=group, size=len(bought_sets),
                              buyers_by_offset=dict(sorted(counts.items()))))
    return cohorts
