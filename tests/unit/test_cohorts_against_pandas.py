"""Cohort retention equals a straightforward pandas computation on the same generated orders: cohort =
month of first order, offset = calendar months after it, share = distinct buyers in the offset month over
the cohort's size; also per acquisition channel."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
from lifecycle_stage_engine.analytics.cohorts import retention

START = datetime(2025, 1, 1, tzinfo=UTC)


def orders(count: int = 3000, customers: int = 700, seed: int = 11) -> list[tuple[str, datetime]]:
    rng = random.Random(seed)
    return [(f"c{rng.randrange(customers):04d}", START + timedelta(days=rng.randrange(540), hours=rng.randrange(24)))
            for _ in range(count)]


def pandas_matrix(placed: list[tuple[str, datetime]], channel: dict[str, str] | None) -> dict:
    frame = pd.DataFrame(placed, columns=["customer", "time"])
    frame["month"] = frame["time"].dt.tz_localize(None).dt.to_period("M")
    first = frame.groupby("customer")["month"].min().rename("cohort")
    frame = frame.join(first, on="customer")
    frame["offset"] = (frame["month"] - frame["cohort"]).apply(lambda d: d.n)
    frame["group"] = frame["customer"].map(channel).fillna("(none)") if channel is not None else None
    keys = ["cohort", "group"] if channel is not None else ["cohort"]
    sizes = frame.groupby(keys)["customer"].nunique()
    buyers = frame[frame["offset"] >= 1].groupby([*keys, "offset"])["customer"].nunique()
    out = {}
    for key, size in sizes.items():
        key = key if isinstance(key, tuple) else (key,)
        later = {int(offset): int(n) for (*k, offset), n in buyers.items() if tuple(k) == key}
        out[(str(key[0]), key[1] if channel is not None else None)] = (int(size), later)
    return out


def ours(placed, channel=None) -> dict:
    return {(c.month, c.group): (c.size, c.buyers_by_offset) for c in retention(placed, groups=channel)}


def test_cohort_retention_equals_the_pandas_computation():
    placed = orders()
    assert ours(placed) == pandas_matrix(placed, None)


def test_cohort_retention_by_acquisition_channel_equals_the_pandas_computation():
    placed = orders()
    rng = random.Random(3)
    channel = {f"c{i:04d}": rng.choice(["cpc", "email", "referral"]) for i in range(700) if rng.random() < 0.9}
    assert ours(placed, channel) == pandas_matrix(placed, channel)
    shares = [c.share(1) for c in retention(placed)]
    assert all(0 <= s <= 1 for s in shares) and any(s > 0 for s in shares)
