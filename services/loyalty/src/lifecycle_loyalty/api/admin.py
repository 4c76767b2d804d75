"""The operator's API (Bearer admin token, `LIFECYCLE_LOYALTY_ADMIN_TOKEN`): the earn rules.

`GET /v1/admin/rules`, `PUT /v1/admin/rules`: read, and replace the rule set in force (versions are
immutable: changed rules need a new version; handlers read the rule set in force with every batch).
`POST /v1/admin/rules/preview`: what an event would earn under the rule set in force or any other,
before caps and debt (a what-if: nothing is stored).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from lifecycle_shared.auth import AdminAccess
from lifecycle_shared.http import Engine, errors
from lifecycle_shared.orders import unreadable_amount_fields
from lifecycle_shared.stages import Stage
from pydantic import BaseModel, ConfigDict, Field

from lifecycle_loyalty.db import rulesets
from lifecycle_loyalty.domain.earning import (
    Activity,
    EarnRules,
    Entry,
    OrderState,
    decide_activity,
    decide_order_entry,
    decide_stage_bonus,
    order_value,
)

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminAccess], responses=errors(401, 403))

PREVIEW_TIME = datetime(2000, 1, 1, tzinfo=UTC)


class PreviewEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["order_completed", "referral_completed", "review_written", "stage_reached"]
    properties: dict[str, Any] = Field(default_factory=dict, max_length=100, description=(
        "an order's `revenue`/`total`/`value`, `shipping`, `currency`; a referral's `referrer_id`"))
    to_stage: Stage | None = Field(None, description="stage_reached: the stage reached")


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: PreviewEvent
    rules: EarnRules | None = Field(None, description="default: the rule set in force")


class PreviewEntry(BaseModel):
    customer: str  # `customer`, or `referrer` for a referrer's points
    kind: str
    points: int
    rule: str
    rule_version: str


class PreviewOut(BaseModel):
    rule_version: str
    points: int
    entries: list[PreviewEntry]


@router.get("/rules", response_model=EarnRules)
async def get_rules(engine: Engine) -> EarnRules:
    async with engine.connect() as conn:
        return await rulesets.in_force(conn)


@router.put("/rules", response_model=EarnRules, responses=errors(400, 409))
async def put_rules(rules: EarnRules, engine: Engine) -> EarnRules:
    async with engine.begin() as conn:
        if not await rulesets.activate(conn, rules):
            raise HTTPException(409, f"version '{rules.version}' exists with other rules: give these a new version")
    return rules


def preview_entries(event: PreviewEvent, rules: EarnRules) -> list[Entry]:
    """The pure decisions an event meets, for a customer holding nothing yet."""
    if event.type == "order_completed":
        amount, shipping, currency = order_value(event.properties)
        entry = decide_order_entry(OrderState(customer_id="customer", order_id="order", amount=amount,
                                              completed_event_id="event", refunded_event_id=None, held=0,
                                              currency=currency, shipping=shipping), rules)
        return [entry] if entry else []
    if event.type == "stage_reached":
        # A what-if of a verified move (an unverified one pays nothing, whatever the rules).
        bonus = decide_stage_bonus("customer", str(event.to_stage or ""), held_rules=set(), verified=True, rules=rules)
        return [bonus] if bonus else []
    referrer = "referrer" if event.type == "referral_completed" else None
    return decide_activity(Activity(kind="review" if referrer is None else "referral", customer_id="customer",
                                    cause_id="event", at=PREVIEW_TIME, referrer_id=referrer),
                           earned_in_period={}, rules=rules)


@router.post("/rules/preview", response_model=PreviewOut, responses=errors(400))
async def preview(body: PreviewIn, engine: Engine) -> PreviewOut:
    """What the event would earn (before caps already used and before any debt is settled from it)."""
    unreadable = unreadable_amount_fields(body.event.properties)
    if unreadable:
        raise HTTPException(400, f"event.properties: unreadable amounts in {unreadable}")
    if body.event.type == "stage_reached" and body.event.to_stage is None:
        raise HTTPException(400, "event.to_stage: required for stage_reached")
    rules = body.rules
    if rules is None:
        async with engine.connect() as conn:
            rules = await rulesets.in_force(conn)
    entries = preview_entries(body.event, rules)
    return PreviewOut(rule_version=rules.version, points=sum(e.points for e in entries),
                      entries=[PreviewEntry(customer=e.customer_id, kind=e.kind, points=e.points, rule=e.rule,
                                            rule_version=e.rule_version) for e in entries])
