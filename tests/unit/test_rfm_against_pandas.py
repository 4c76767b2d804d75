"""RFM figures equal a straightforward pandas computation on the same generated data: R and M the quintile
of each buyer's mid-rank, `ceil(5 * (series.rank(method="average") - 0.5) / n)` (tied buyers score the
same; recency ranked descending: the longest ago scores 1), F the order count cut at 1, 2, 3, 4-5 and 6+
orders (`pd.cut`), over a shop of 1,003 buyers with many ties (an odd count: the quintile edges fall
between ranks)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from lifecycle_stage_engine.analytics.rfm import Buyer, scores, segment, sizes

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def shop(count: int = 1003, seed: int = 7) -> list[Buyer]:
    rng = random.Random(seed)
    return [Buyer(customer_id=f"c{i:05d}", last_order_at=NOW - timedelta(days=rng.choice([1, 3, 7, 30, 90, 400])),
                  orders=rng.choice([1, 1, 1, 2, 2, 3, 5, 8]),
                  revenue=Decimal(rng.choice([10, 25, 25, 60, 120, 999]) * rng.randint(1, 3)))
            for i in range(count)]


def test_scores_and_segments_equal_the_pandas_computation():
    buyers = shop()
    frame = pd.DataFrame({"customer_id": [b.customer_id for b in buyers],
                          "last": [b.last_order_at for b in buyers], "orders": [b.orders for b in buyers],
                          "revenue": [float(b.revenue) for b in buyers]}).sort_values("customer_id")
    frame["recency"] = (NOW - frame["last"]).dt.total_seconds() / 86400
    n = len(frame)

    def quintile(ranks: pd.Series) -> pd.Series:
        return np.ceil(5 * (ranks - 0.5) / n).astype(int)

    frame["R"] = quintile(frame["recency"].rank(method="average", ascending=False))
    frame["F"] = pd.cut(frame["orders"], bins=[0, 1, 2, 3, 5, np.inf], labels=[1, 2, 3, 4, 5]).astype(int)
    frame["M"] = quintile(frame["revenue"].rank(method="average"))
    frame["FM"] = ((frame["F"] + frame["M"] + 1) // 2).astype(int)
    frame["segment"] = [segment(r, fm) for r, fm in zip(frame["R"], frame["FM"], strict=True)]

    scored = scores(buyers, as_of=NOW)
    ours = pd.DataFrame([{"customer_id": c, "R": s.r, "F": s.f, "M": s.m, "segment": s.segment}
                         for c, s in scored.items()]).sort_values("customer_id")
    pd.testing.assert_frame_equal(ours.reset_index(drop=True),
                                  frame[["customer_id", "R", "F", "M", "segment"]].reset_index(drop=True))
    assert sizes(scored) == {**dict.fromkeys(sizes(scored), 0), **frame["segment"].value_counts().to_dict()}
