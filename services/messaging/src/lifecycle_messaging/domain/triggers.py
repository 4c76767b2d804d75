"""What starts a campaign: a stage transition, a touchpoint, or a loyalty event. Pure.

- `stage_changed`: a transition into one of `to_stages` (None: any), from one of `from_stages` (None: any;
  `null` in the list: a first touch), of one of the kinds in `moves` (`move_of`):
  - `forward`: along the journey (awareness -> consideration -> purchase -> retention -> loyalty), a first
    stage included;
  - `backward`: back along it (a refund);
  - `drift`: deeper into drifting away (onto at_risk, onto lapsed, at_risk -> lapsed);
  - `reactivated`: back onto the journey from a drift stage by buying again (reason `reactivated`);
  - `other`: anything else (lapsed -> at_risk, off a drift without a reactivation, a stage to itself).
  By default `forward`, `drift` and `reactivated`: a move back by a refund, or sideways, says nothing new.
- `touchpoint`: a track event named in `events` (as the storefront sends it: `Cart Abandoned`).
- `loyalty`: an event of loyalty-events.v1: `tier_reached` / `tier_lost` (`loyalty.tier_changed`, optionally
  only into `tiers`), `points_expiring` (`loyalty.points_expiring`, optionally at least `min_points`),
  `reward_redeemed` (`loyalty.reward_redeemed`, optionally only of `reward_kinds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from lifecycle_shared.events import (
    POINTS_EXPIRING_TYPE,
    REWARD_REDEEMED_TYPE,
    TIER_CHANGED_TYPE,
    PointsExpiringData,
    RewardRedeemedData,
    TierChangedData,
    touchpoint_type,
)
from lifecycle_shared.stages import DRIFT, RANK, REACTIVATED, Stage, is_drift, is_forward
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Move = Literal["forward", "backward", "drift", "reactivated", "other"]
MOVES: tuple[str, ...] = Move.__args__  # type: ignore[attr-defined]
DEFAULT_MOVES: list[Move] = ["forward", "drift", "reactivated"]
LoyaltyKind = Literal["tier_reached", "tier_lost", "points_expiring", "reward_redeemed"]
LOYALTY_TYPES = (TIER_CHANGED_TYPE, POINTS_EXPIRING_TYPE, REWARD_REDEEMED_TYPE)
# A track event's name as a storefront sends it ("Order Completed"); a tier or reward kind.
EventName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*\S[^\x00]*$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
_DRIFT_DEPTH: dict[str | None, int] = {stage: depth for depth, stage in enumerate(DRIFT)}


def move_of(*, from_stage: str | None, to_stage: str, reason: str) -> str:
    """What kind of move a transition is (one of MOVES)."""
    if is_drift(from_stage) and to_stage in RANK:
        return "reactivated" if reason == REACTIVATED else "other"
    if is_drift(to_stage):
        return "drift" if _DRIFT_DEPTH.get(from_stage, -1) < _DRIFT_DEPTH[to_stage] else "other"
    if is_forward(from_stage, to_stage) and not is_drift(from_stage):
        return "forward"
    if to_stage in RANK and from_stage in RANK and RANK[from_stage] > RANK[to_stage]:
        return "backward"
    return "other"


class StageTrigger(BaseModel):
    """A stage transition (`lifecycle.stage_changed`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["stage_changed"]
    to_stages: list[Stage] | None = Field(None, min_length=1, max_length=len(Stage),
                                          description="into one of these stages; default: any")
    from_stages: list[Stage | None] | None = Field(None, min_length=1, max_length=len(Stage) + 1, description=(
        "from one of these stages (null: a first touch); default: any"))
    moves: list[Move] = Field(default_factory=lambda: list(DEFAULT_MOVES), min_length=1, max_length=len(MOVES),
                              description="kinds of move: forward, backward, drift, reactivated, other")

    def matches(self, *, from_stage: str | None, to_stage: str, reason: str) -> bool:
        return ((self.to_stages is None or to_stage in self.to_stages)
                and (self.from_stages is None or from_stage in self.from_stages)
                and move_of(from_stage=from_stage, to_stage=to_stage, reason=reason) in self.moves)


class TouchpointTrigger(BaseModel):
    """A track event the storefront sent (`Cart Abandoned`, `Product Added`)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["touchpoint"]
    events: list[EventName] = Field(min_length=1, max_length=20, examples=[["Cart Abandoned", "Product Added"]])

    @property
    def event_types(self) -> frozenset[str]:
        """The event types these names travel as (`touchpoint.cart_abandoned`)."""
        return frozenset(touchpoint_type("track", name) for name in self.events)


class LoyaltyTrigger(BaseModel):
    """An event loyalty announces (loyalty-events.v1)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["loyalty"]
    event: LoyaltyKind
    tiers: list[Name] | None = Field(None, min_length=1, max_length=20,
                                     description="tier_reached / tier_lost: only into these tiers")
    min_points: int | None = Field(None, ge=0, le=10**12, description="points_expiring: at least this many")
    reward_kinds: list[Name] | None = Field(None, min_length=1, max_length=20,
                                            description="reward_redeemed: only rewards of these kinds")

    @model_validator(mode="after")
    def _filters_fit(self) -> LoyaltyTrigger:
        misplaced = [name for name, value, kinds in (
            ("tiers", self.tiers, ("tier_reached", "tier_lost")), ("min_points", self.min_points, ("points_expiring",)),
            ("reward_kinds", self.reward_kinds, ("reward_redeemed",))) if value is not None and self.event not in kinds]
        if misplaced:
            raise ValueError(f"{misplaced[0]} does not apply to {self.event}")
        return self

    def matches(self, fact: LoyaltyFact) -> bool:
        if fact.kind != self.event:
            return False
        if self.tiers is not None and fact.tier not in self.tiers:
            return False
        if self.min_points is not None and (fact.points or 0) < self.min_points:
            return False
        return self.reward_kinds is None or fact.reward_kind in self.reward_kinds


Trigger = Annotated[StageTrigger | TouchpointTrigger | LoyaltyTrigger, Field(discriminator="type")]


@dataclass(frozen=True)
class LoyaltyFact:
    """A loyalty event as a trigger reads it: what happened, to whom, when, and the values it tells."""

    kind: str
    customer_id: str
    at: datetime
    tier: str | None = None
    points: int | None = None
    reward_kind: str | None = None
    expires_at: datetime | None = None
    cost: int | None = None

    @property
    def values(self) -> dict[str, object]:
        """What the event knows better than the traits (template variables and audience fields): the tier, the
        points (expiring), when they expire, the reward's kind (`reward`) and the points it cost."""
        return {name: value for name, value in (
            ("tier", self.tier), ("points", self.points), ("expires_at", self.expires_at),
            ("reward", self.reward_kind), ("cost", self.cost)) if value is not None}


def loyalty_fact(event_type: str, data: object) -> LoyaltyFact | None:
    """The fact a loyalty event tells; None for a type campaigns do not start on."""
    if event_type == TIER_CHANGED_TYPE and isinstance(data, TierChangedData):
        return LoyaltyFact(f"tier_{data.direction}", data.customer_id, data.changed_at, tier=data.to_tier)
    if event_type == POINTS_EXPIRING_TYPE and isinstance(data, PointsExpiringData):
        return LoyaltyFact("points_expiring", data.customer_id, data.warned_at, points=data.points,
                           expires_at=data.expires_at)
    if event_type == REWARD_REDEEMED_TYPE and isinstance(data, RewardRedeemedData):
        return LoyaltyFact("reward_redeemed", data.customer_id, data.redeemed_at, reward_kind=data.reward_kind,
                           cost=data.cost)
    return None
