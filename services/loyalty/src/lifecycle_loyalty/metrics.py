"""Loyalty's own Prometheus metrics (served at `/metrics` with the shared ones)."""

from __future__ import annotations

from prometheus_client import Counter

# Ledger entry kinds that earn (positive points) and that spend (a redemption).
EARNING_KINDS = ("earn", "bonus")
SPENDING_KINDS = ("spend",)
POINTS_EARNED = Counter("lifecycle_loyalty_points_earned_total", "Points written as earned, by entry kind",
                        ["kind"])
POINTS_SPENT = Counter("lifecycle_loyalty_points_spent_total", "Points spent on rewards (redemptions)")
for _kind in EARNING_KINDS:  # every series exists from the start, at 0
    POINTS_EARNED.labels(_kind)


def written(kind: str, points: int) -> None:
    """Count a ledger entry just inserted (not a repeat)."""
    if kind in EARNING_KINDS and points > 0:
        POINTS_EARNED.labels(kind).inc(points)
    elif kind in SPENDING_KINDS:
        POINTS_SPENT.inc(abs(points))


BONUSES_UNPAID = Counter(
    "lifecycle_loyalty_bonuses_unpaid_total",
    "Moves to a rewarded stage that paid no bonus on purpose, by reason (unverified: caused by a write key's "
    "event without identity verification)",
    ["reason"],
)
