"""The lifecycle stages, once for every service: their names (the values on the wire, in
`lifecycle.stage_changed`), their order along the journey, and the two stages of drifting away.

A customer walks the journey (awareness → consideration → purchase → retention → loyalty) by what
they do, and drifts off it (at_risk → lapsed) by time passing without an order; buying again
brings them back onto it (a transition whose reason is `reactivated`).
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    AWARENESS = "awareness"
    CONSIDERATION = "consideration"
    PURCHASE = "purchase"
    RETENTION = "retention"
    LOYALTY = "loyalty"
    AT_RISK = "at_risk"
    LAPSED = "lapsed"


JOURNEY = (Stage.AWARENESS, Stage.CONSIDERATION, Stage.PURCHASE, Stage.RETENTION, Stage.LOYALTY)
DRIFT = (Stage.AT_RISK, Stage.LAPSED)
# Keyed by str: stage names arrive as plain strings (from the wire, from the database).
RANK: dict[str, int] = {stage: rank for rank, stage in enumerate(JOURNEY)}
# The reason a transition back onto the journey from a drift stage carries.
REACTIVATED = "reactivated"


def is_forward(from_stage: str | None, to_stage: str) -> bool:
    """A move to a later stage along the journey (or a first stage). A `from_stage` off the journey
    (a drift stage, or a name this version does not know) counts as before it; a `to_stage` off it
    is never forward."""
    if to_stage not in RANK:
        return False
    from_rank = -1 if from_stage is None else RANK.get(from_stage, -1)
    return from_rank < RANK[to_stage]


def is_drift(stage: str | None) -> bool:
    return stage in DRIFT
