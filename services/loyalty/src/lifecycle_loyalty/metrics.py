"""Loyalty's own Prometheus metrics (served at `/metrics` with the shared ones)."""

from __future__ import annotations

from prometheus_client import Counter

BONUSES_UNPAID = Counter(
    "lifecycle_loyalty_bonuses_unpaid_total",
    "Moves to a rewarded stage that paid no bonus on purpose, by reason (unverified: caused by a write key's "
    "event without identity verification)",
    ["reason"],
)
