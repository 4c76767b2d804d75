"""Campaigns as data: what a campaign is, whether it is well made, and which campaigns an event starts. Pure.

A campaign (`CampaignSpec`, one immutable `Campaign` version of it) is a trigger (`domain.triggers`), audience
conditions (`domain.audience`), an optional delay, a channel (email), a template - with, optionally, its own
copy per locale in place of the template's - a priority, a holdout share and an enabled flag. Every change
is a new version; a message records the campaign id and the version that made it.

- The **id** is stable (`welcome`, `cart_reminder`): holdout groups are drawn from it (`domain.holdout`), so
  editing a campaign never reshuffles them. The default campaigns' ids are their templates' names.
- The **delay** (`delay_hours`) makes the message due that long after its cause; `cancelled_by` names track
  events that cancel it when the customer does one after the cause and before it goes out (the cart bought).
- **Priority**: when messages compete for a customer's frequency cap at one moment, the higher goes first.
- **Holdout share**: None takes the shop's (`LIFECYCLE_MESSAGING_HOLDOUT_SHARE`, 0.10); 0 holds nobody out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from lifecycle_shared.events import touchpoint_type
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from lifecycle_messaging.domain.audience import Condition, Profile, in_audience
from lifecycle_messaging.domain.locales import normalised
from lifecycle_messaging.domain.sandbox import Compiled, TemplateError, TemplateSource, validate
from lifecycle_messaging.domain.triggers import (
    EventName,
    LoyaltyFact,
    LoyaltyTrigger,
    StageTrigger,
    TouchpointTrigger,
    Trigger,
)

CAMPAIGN_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
CampaignId = Annotated[str, StringConstraints(pattern=CAMPAIGN_ID_PATTERN)]
TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")]
MAX_DELAY_HOURS = 60 * 24  # sixty days


def _storable(value: str) -> str:
    """Text PostgreSQL keeps as given: no NUL, no lone surrogate."""
    if "\x00" in value:
        raise ValueError("may not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text") from None
    return value


class Content(BaseModel):
    """A campaign's own copy in one locale (a template file's parts: docs/messaging.md "A template file")."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=1000)
    text: str = Field(min_length=1, max_length=100_000)
    html: str = Field(min_length=1, max_length=200_000)
    preheader: str = Field("", max_length=1000)
    from_name: str = Field("", max_length=200)

    _text = field_validator("subject", "text", "html", "preheader", "from_name")(_storable)

    def source(self) -> TemplateSource:
        return TemplateSource(subject=self.subject, text=self.text, html=self.html, preheader=self.preheader,
                              from_name=self.from_name)


class CampaignSpec(BaseModel):
    """A campaign as an admin writes it (every field but the id; a change is a new version)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    trigger: Trigger
    audience: list[Condition] = Field(default_factory=list, max_length=20,
                                      description="conditions that must all hold (none: everyone triggered)")
    delay_hours: float = Field(0.0, ge=0.0, le=MAX_DELAY_HOURS,
                               description="due this long after its cause (a durable timer, not a sleep)")
    cancelled_by: list[EventName] = Field(default_factory=list, max_length=20, description=(
        "track events (`Order Completed`) that cancel the message when the customer does one after its cause, "
        "before it goes out"))
    channel: Literal["email"] = "email"
    template: TemplateName = Field(examples=["cart_reminder"], description="a shipped template (`templates/<name>/`)")
    content: dict[str, Content] | None = Field(None, max_length=20, description=(
        "the campaign's own copy by locale (`en`, `vi`, `th`, `vi-vn`...), in place of the template's for those "
        "locales; validated when saved"))
    priority: int = Field(0, ge=-1000, le=1000, description="higher goes first when messages compete for the caps")
    holdout_share: float | None = Field(None, ge=0.0, le=1.0, description=(
        "share of the audience held out (never sent, the control); null: the shop's default "
        "(LIFECYCLE_MESSAGING_HOLDOUT_SHARE, 0.10)"))
    enabled: bool = True

    _text = field_validator("name", "description")(_storable)

    @model_validator(mode="after")
    def _every_text_storable(self) -> CampaignSpec:
        """Every text anywhere in it (event names, tiers, condition values, keys) as PostgreSQL keeps it."""
        for text in _texts(self.model_dump(mode="python")):
            _storable(text)
        return self

    @field_validator("content")
    @classmethod
    def _locales(cls, content: dict[str, Content] | None) -> dict[str, Content] | None:
        if content is None:
            return None
        tags = {tag: normalised(tag) for tag in content}
        if wrong := sorted(tag for tag, norm in tags.items() if norm is None):
            raise ValueError(f"not a language tag: {wrong[0][:40]!r}")
        if len(set(tags.values())) < len(tags):
            raise ValueError("a locale is given twice")
        return {str(tags[tag]): part for tag, part in content.items()}


def _texts(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)


@dataclass(frozen=True)
class Campaign:
    """One version of a campaign: immutable."""

    id: str
    version: int
    spec: CampaignSpec

    @property
    def enabled(self) -> bool:
        return self.spec.enabled

    @property
    def template(self) -> str:
        return self.spec.template

    @property
    def priority(self) -> int:
        return self.spec.priority

    @property
    def delay(self) -> timedelta:
        return timedelta(hours=self.spec.delay_hours)

    @property
    def trigger_kind(self) -> str:
        return self.spec.trigger.type

    def share(self, default: float) -> float:
        """The holdout share: the campaign's own, else the shop's."""
        return default if self.spec.holdout_share is None else self.spec.holdout_share

    @property
    def cancelling_types(self) -> frozenset[str]:
        return frozenset(touchpoint_type("track", name) for name in self.spec.cancelled_by)


def problems(spec: CampaignSpec, *, templates: Mapping[str, object]) -> list[tuple[str, str]]:
    """What keeps a campaign from being saved, as (where, what) pairs; none: it may be saved. The template
    must be shipped, and the campaign's own copy must compile and render (`domain.sandbox.validate`)."""
    found: list[tuple[str, str]] = []
    if spec.template not in templates:
        found.append(("template", f"unknown template {spec.template!r}; shipped: {', '.join(sorted(templates))}"))
    for locale, content in sorted((spec.content or {}).items()):
        try:
            validate(content.source())
        except TemplateError as error:
            where = f"content.{locale}" if error.part == "document" else f"content.{locale}.{error.part}"
            found.append((where, f"line {error.line}: {error.message}" if error.line else error.message))
    return found


def compiled_content(spec: CampaignSpec) -> dict[str, Compiled]:
    """The campaign's own copy, compiled by locale (a saved campaign's always compiles)."""
    return {locale: validate(content.source()) for locale, content in (spec.content or {}).items()}


def _live(campaigns: Iterable[Campaign]) -> list[Campaign]:
    return [c for c in campaigns if c.enabled]


def for_transition(campaigns: Iterable[Campaign], *, from_stage: str | None, to_stage: str, reason: str,
                   profile: Profile) -> list[Campaign]:
    """The enabled campaigns a stage transition starts for a customer in their audience."""
    return [c for c in _live(campaigns) if isinstance(c.spec.trigger, StageTrigger)
            and c.spec.trigger.matches(from_stage=from_stage, to_stage=to_stage, reason=reason)
            and in_audience(c.spec.audience, profile)]


def for_touchpoint(campaigns: Iterable[Campaign], *, event_type: str, profile: Profile) -> list[Campaign]:
    """The enabled campaigns a track event (`touchpoint.cart_abandoned`) starts for a customer in their audience."""
    return [c for c in _live(campaigns) if isinstance(c.spec.trigger, TouchpointTrigger)
            and event_type in c.spec.trigger.event_types and in_audience(c.spec.audience, profile)]


def for_loyalty(campaigns: Iterable[Campaign], fact: LoyaltyFact, *, profile: Profile) -> list[Campaign]:
    """The enabled campaigns a loyalty event starts for a customer in their audience."""
    return [c for c in _live(campaigns) if isinstance(c.spec.trigger, LoyaltyTrigger)
            and c.spec.trigger.matches(fact) and in_audience(c.spec.audience, profile)]


def touchpoint_types(campaigns: Iterable[Campaign]) -> frozenset[str]:
    """The touchpoint types messaging must read for these campaigns: the track events that start them and
    those that cancel their waiting messages."""
    types: set[str] = set()
    for campaign in _live(campaigns):
        if isinstance(campaign.spec.trigger, TouchpointTrigger):
            types |= campaign.spec.trigger.event_types
        types |= campaign.cancelling_types
    return frozenset(types)


def starting_types(campaigns: Iterable[Campaign]) -> frozenset[str]:
    """The touchpoint types that may start one of these campaigns (`for_touchpoint` starts nothing for any other)."""
    return frozenset(t for campaign in _live(campaigns) if isinstance(campaign.spec.trigger, TouchpointTrigger)
                     for t in campaign.spec.trigger.event_types)


def defaults(documents: Sequence[Mapping[str, Any]]) -> list[Campaign]:
    """The shipped default campaigns (`campaigns/default.yaml`: a list of `id` + spec), each its version 1."""
    campaigns = []
    for document in documents:
        body = dict(document)
        campaign_id = str(body.pop("id"))
        campaigns.append(Campaign(campaign_id, 1, CampaignSpec.model_validate(body)))
    ids = [c.id for c in campaigns]
    if len(set(ids)) != len(ids):
        raise ValueError("campaigns/default.yaml: an id is used twice")
    return campaigns
