"""The stage funnel, from the stored transition history (event time). Pure.

For a period [start, end):
- `entered`: customers who entered the stage in the period;
- `converted`: of those, the ones who reached a later journey stage after entering it and before `end`
  ("why did 50% try the product but only 10% buy a second time?"); `conversion` = converted / entered,
  `drop_off` = 1 - conversion;
- `median_days_in_stage`: over the stays that began in the period and ended before `end` (a stay still
  running at `end` is left out: its length is not known yet).
A customer entering a stage twice in the period counts once (their first entry).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lifecycle_shared.stages import JOURNEY, RANK


@dataclass(frozen=True)
class Step:
    customer_id: str
    to_stage: str
    time: datetime


@dataclass(frozen=True)
class StageFigures:
    stage: str
    entered: int
    converted: int
    median_days_in_stage: float | None

    @property
    def conversion(self) -> float | None:
        return self.converted / self.entered if self.entered else None

    @property
    def drop_off(self) -> float | None:
        return None if self.entered == 0 else 1 - self.converted / self.entered


def funnel(steps: Iterable[Step], *, start: datetime, end: datetime) -> list[StageFigures]:
    """One row per journey stage, in journey order."""
    by_customer: dict[str, list[Step]] = defaultdict(list)
    for step in steps:
        if step.time < end:
            by_customer[step.customer_id].append(step)
    entered: dict[str, set[str]] = defaultdict(set)
    converted: dict[str, set[str]] = defaultdict(set)
    stays: dict[str, list[float]] = defaultdict(list)
    for customer, history in by_customer.items():
        history.sort(key=lambda s: s.time)
        first_entry: dict[str, datetime] = {}
        for index, step in enumerate(history):
            if step.to_stage not in RANK:
                continue
            if start <= step.time and step.to_stage not in first_entry:
                first_entry[step.to_stage] = step.time
                entered[step.to_stage].add(customer)
                if any(RANK.get(later.to_stage, -1) > RANK[step.to_stage] for later in history[index + 1:]):
                    converted[step.to_stage].add(customer)
            if start <= step.time and index + 1 < len(history):
                stays[step.to_stage].append((history[index + 1].time - step.time).total_seconds() / 86400)
    return [StageFigures(stage=stage, entered=len(entered[stage]), converted=len(converted[stage]),
                         median_days_in_stage=statistics.median(stays[stage]) if stays[stage] else None)
            for stage in (s.value for s in JOURNEY)]
