"""The stage rules as data: a versioned rule set an operator can read, change and replace.

The defaults below are the documented rule set (`rules/default.yaml` shows them as a file). A
rule set is loaded at start (the `rules_file` setting, else the last one activated through the
admin API, else the defaults) and every transition records the version that decided it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from lifecycle_shared.stages import Stage
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

DEFAULT_RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "default.yaml"


# A touchpoint's name as the rules see it: the snake_case of the event (track "Order Completed" ->
# order_completed; page and screen calls are page_viewed and screen_viewed).
EventName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,100}$")]
Events = Annotated[frozenset[EventName], Field(max_length=200)]
ContentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:/-]{1,200}$")]
NEW_VISITOR = "new_visitor"
DEFAULT_CONTENT = {
    NEW_VISITOR: "welcome_banner", "awareness": "welcome_banner", "consideration": "comparison_and_faq",
    "purchase": "review_request", "retention": "member_offers", "loyalty": "referral_invite",
    "at_risk": "come_back_offer", "lapsed": "come_back_offer",
}


class DriftRules(BaseModel):
    """When a buyer who stops buying becomes at-risk, then lapsed.

    A repeat buyer is judged by their own rhythm: days since their last order against
    `factor` × the median gap between their orders (never less than `min_days`). A one-time
    buyer has no rhythm: a plain number of days since the order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_risk_factor: float = Field(2.0, gt=0, le=1000)
    lapsed_factor: float = Field(4.0, gt=0, le=1000)
    min_days: float = Field(14, ge=0, le=36500, description="floor under rhythm-based thresholds")
    one_time_at_risk_days: float = Field(90, gt=0, le=36500)
    one_time_lapsed_days: float = Field(180, gt=0, le=36500)
    # Seam for the predictive model: when a probability of being alive is known for a customer,
    # below this they are at-risk whatever their rhythm says (None: not used).
    at_risk_below_p_alive: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _lapsed_after_at_risk(self) -> DriftRules:
        if self.lapsed_factor < self.at_risk_factor or self.one_time_lapsed_days < self.one_time_at_risk_days:
            raise ValueError("a customer lapses after being at risk: lapsed_factor >= at_risk_factor and "
                             "one_time_lapsed_days >= one_time_at_risk_days")
        return self


class IdentityRules(BaseModel):
    """Guardrails of identity resolution, and which traits are ids too."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_anonymous_ids: int = Field(100, ge=1, le=100_000, description="anonymous ids linked to one profile at most")
    max_merges: int = Field(50, ge=0, le=100_000, description="profiles one profile absorbs at most")
    # Traits that identify a person across devices (e.g. ["email"]): an anonymous profile giving a
    # known one's email joins it. Off by default: emails are shared (families, shop counters).
    trait_ids: tuple[Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,49}$")], ...] = Field(
        (), max_length=10)


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field("default-v2", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    intent_events: Events = frozenset({
        "product_viewed", "product_list_viewed", "product_added", "product_added_to_wishlist",
        "cart_viewed", "checkout_started", "signed_up", "products_searched", "product_clicked",
    })
    order_events: Events = frozenset({"order_completed"})
    refund_events: Events = frozenset({"order_refunded"})
    advocacy_events: Events = frozenset({"referral_sent", "friend_referred", "referral_completed"})
    review_events: Events = frozenset({"product_reviewed", "review_submitted"})
    min_review_rating: float = Field(4, ge=0, le=100)
    loyalty_min_orders: int = Field(2, ge=1, le=1000)
    drift: DriftRules = DriftRules()
    identity: IdentityRules = IdentityRules()
    # What a storefront shows a visitor in each stage (the profile API's `show`); `new_visitor`: no
    # profile yet. The source documents' embedded content and overlays.
    content: dict[str, ContentName] = Field(default_factory=lambda: dict(DEFAULT_CONTENT))

    @field_validator("content")
    @classmethod
    def _content_by_stage(cls, value: dict[str, str]) -> dict[str, str]:
        """Stages a rule set leaves out keep the default content."""
        unknown = sorted(set(value) - {NEW_VISITOR, *Stage})
        if unknown:
            raise ValueError(f"content keys are stages or {NEW_VISITOR!r}; not {unknown}")
        return {**DEFAULT_CONTENT, **value}

    def as_document(self) -> dict[str, Any]:
        """The rule set as JSON-ready data (sorted event lists), as the API and files show it."""
        data = self.model_dump(mode="json")
        return {key: sorted(value) if isinstance(value, list) else value for key, value in data.items()}


DEFAULT_RULES = RuleSet()


def load_rules(path: Path) -> RuleSet:
    """A rule set from a YAML (or JSON: YAML reads it too) file; missing fields take the defaults."""
    return RuleSet.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
