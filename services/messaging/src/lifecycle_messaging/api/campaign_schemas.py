"""The bodies of the campaigns admin API (`api/campaigns.py`): what is written (a `CampaignSpec`, with an id when
created), what is read back, and the preview."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lifecycle_messaging.domain.audience import Condition
from lifecycle_messaging.domain.campaigns import CAMPAIGN_ID_PATTERN, Campaign, CampaignSpec


class CampaignIn(CampaignSpec):
    """A new campaign: its id (never reused, deleted campaigns' included) and its first version."""

    id: str = Field(pattern=CAMPAIGN_ID_PATTERN, examples=["gold_welcome"], description=(
        "lower case letters, digits, `_` and `-`; stable: holdout groups are drawn from it"))


class CampaignOut(CampaignSpec):
    """A campaign: its current version's definition, and its state."""

    model_config = ConfigDict(extra="ignore")

    id: str
    version: int = Field(description="the current version (every change makes the next one)")
    origin: Literal["shipped", "api"] = Field(description="seeded from the shipped defaults, or made through the API")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = Field(description="when it was deleted (it starts nothing; PUT brings it back)")


class VersionOut(BaseModel):
    version: int
    created_at: datetime
    definition: CampaignSpec


class CampaignDetail(CampaignOut):
    versions: list[VersionOut] = Field(description="every version, the first first")


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=200, pattern="^[^\x00]+$", examples=["ann"],
                             description="whose message: their userId (or anonymousId), as messaging keys them")
    locale: str | None = Field(None, max_length=35, pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{1,8})*$",
                               examples=["vi-VN"], description="in place of the customer's `locale` trait")
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="a version of the campaign; default: the current")


class PreviewOut(BaseModel):
    campaign: str
    version: int
    customer_id: str = Field(description="whose profile rendered it (the survivor, if the id given was merged)")
    template: str
    locale: str = Field(description="the locale it rendered in (`domain.locales`: trait, fallback chain)")
    subject: str
    preheader: str
    from_name: str
    text: str
    html: str
    in_audience: bool = Field(description="whether the customer is in the campaign's audience now")
    failing: list[Condition] = Field(description="the audience conditions they do not meet")
    address_known: bool = Field(description="whether messaging knows an address for them")


def campaign_out(row: Any) -> CampaignOut:
    return CampaignOut.model_validate({**row.definition, "id": row.id, "version": row.version, "origin": row.origin,
                                       "created_at": row.created_at, "updated_at": row.updated_at,
                                       "deleted_at": row.deleted_at})


def spec_of(campaign: Campaign) -> dict[str, Any]:
    return campaign.spec.model_dump(mode="json")


CREATE_EXAMPLES = {
    "tier": {"summary": "a thank-you when a customer reaches Gold, Vietnamese copy of its own", "value": {
        "id": "gold_tier_thanks", "name": "Gold tier reached",
        "trigger": {"type": "loyalty", "event": "tier_reached", "tiers": ["Gold"]},
        "template": "referral_invite", "priority": 40, "holdout_share": 0.1,
        "content": {"vi": {"subject": "Chúc mừng bạn lên hạng {{ tier }}!",
                           "text": "Cảm ơn bạn đã đồng hành cùng {{ brand }}.\n",
                           "html": "<p>Cảm ơn bạn đã đồng hành cùng {{ brand }}.</p>"}}}},
    "cart": {"summary": "a second cart reminder a day later, for shoppers in Vietnam", "value": {
        "id": "cart_reminder_day_after", "name": "Cart reminder, the day after",
        "trigger": {"type": "touchpoint", "events": ["Cart Abandoned"]}, "delay_hours": 24,
        "cancelled_by": ["Order Completed"], "audience": [{"field": "language", "op": "eq", "value": "vi"}],
        "template": "cart_reminder", "priority": 60}},
}
