"""The lifecycle stages, once for every service: their names (the values on the wire, in
`lifecycle.stage_changed`) and their order along the journey."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    AWARENESS = "awareness"
    CONSIDERATION = "consideration"
    PURCHASE = "purchase"
    RETENTION = "retention"
    LOYALTY = "loyalty"


RANK = {stage: rank for rank, stage in enumerate(Stage)}


def is_forward(from_stage: str | None, to_stage: str) -> bool:
    """A move to a later stage along the journey (or a first stage). A `from_stage` off the journey
    (a name this version does not know) counts as before it; a `to_stage` off it is never forward."""
    if to_stage not in RANK:
        return False
    return RANK.get(from_stage, -1) < RANK[to_stage]
