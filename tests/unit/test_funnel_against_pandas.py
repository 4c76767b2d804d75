"""The stage funnel equals a straightforward pandas computation on the same generated histories:
entries in the period (first per customer and stage), conversion to any later journey stage before the
period's end, median days of the stays that began in the period and ended before its end."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
from lifecycle_shared.stages import JOURNEY, RANK
from lifecycle_stage_engine.analytics.funnel import Step, funnel

T0 = datetime(2026, 1, 1, tzinfo=UTC)
START, END = T0 + timedelta(days=30), T0 + timedelta(days=120)


def histories(customers: int = 600, seed: int = 5) -> list[Step]:
    """Journeys that mostly move forward, sometimes drift (at_risk, lapsed) and come back."""
    rng = random.Random(seed)
    steps = []
    for i in range(customers):
        time, rank = T0 + timedelta(days=rng.uniform(0, 100)), 0
        for _ in range(rng.randint(1, 6)):
            stage = rng.choice(["at_risk", "lapsed"]) if rng.random() < 0.15 else JOURNEY[rank].value
            steps.append(Step(customer_id=f"c{i:04d}", to_stage=stage, time=time))
            rank = min(rank + rng.choice([0, 1, 1, 2]), len(JOURNEY) - 1)
            time += timedelta(days=rng.expovariate(1 / 12), seconds=rng.randrange(86400))
    return steps


def test_the_funnel_equals_the_pandas_computation():
    steps = histories()
    frame = pd.DataFrame([(s.customer_id, s.to_stage, s.time) for s in steps], columns=["customer", "stage", "time"])
    frame = frame[frame["time"] < END].sort_values(["customer", "time"]).reset_index(drop=True)
    frame["rank"] = frame["stage"].map({str(k): v for k, v in RANK.items()}).fillna(-1)
    frame["next_time"] = frame.groupby("customer")["time"].shift(-1)
    frame["later_best"] = frame.groupby("customer")["rank"].transform(lambda s: s[::-1].cummax()[::-1].shift(-1))
    journey = frame[(frame["time"] >= START) & (frame["rank"] >= 0)]
    firsts = journey.drop_duplicates(["customer", "stage"])
    expected = {}
    for stage in (s.value for s in JOURNEY):
        entries = firsts[firsts["stage"] == stage]
        stays = journey[(journey["stage"] == stage) & journey["next_time"].notna()]
        days = (stays["next_time"] - stays["time"]).dt.total_seconds() / 86400
        expected[stage] = (len(entries), int((entries["later_best"] > entries["rank"]).sum()),
                           float(days.median()) if len(days) else None)
    ours = {row.stage: (row.entered, row.converted, row.median_days_in_stage)
            for row in funnel(steps, start=START, end=END)}
    assert ours.keys() == expected.keys()
    for stage, (entered, converted, median) in expected.items():
        assert ours[stage][:2] == (entered, converted), stage
        assert (ours[stage][2] is None) == (median is None) and (median is None or abs(ours[stage][2] - median) < 1e-9)
    assert any(row.conversion and 0 < row.conversion < 1 for row in funnel(steps, start=START, end=END))
