"""The stage engine's own Prometheus metrics (served at `/metrics` with the shared ones)."""

from __future__ import annotations

from lifecycle_shared.stages import Stage
from prometheus_client import Counter

NO_STAGE = "none"  # a customer's first stage comes from none

TRANSITIONS = Counter(
    "lifecycle_stage_engine_transitions_total",
    "Stage changes announced (lifecycle.stage_changed), by the pair of stages (from none: the first)",
    ["from_stage", "to_stage"],
)
for _from in (NO_STAGE, *Stage):  # every pair exists from the start, at 0
    for _to in Stage:
        if _from != _to:
            TRANSITIONS.labels(str(_from), str(_to))


def announced(from_stage: str | None, to_stage: str) -> None:
    """Count an announced stage change (counted when its transaction is written: a batch retried after a
    failure may count one twice; the database is the record, this is the rate)."""
    TRANSITIONS.labels(from_stage or NO_STAGE, to_stage).inc()
