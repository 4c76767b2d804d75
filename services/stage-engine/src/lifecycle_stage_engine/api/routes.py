"""`GET /v1/customers/{id}` and `GET /v1/customers/{id}/transitions` (id: userId or anonymousId)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from lifecycle_shared.auth import ApiAccess
from lifecycle_shared.http import CustomerId, errors
from pydantic import BaseModel

from lifecycle_stage_engine.db import repository as repo

# Personal data: every route needs a token from LIFECYCLE_API_TOKENS.
router = APIRouter(prefix="/v1/customers", tags=["customers"], dependencies=[ApiAccess], responses=errors(401, 403))


class ProfileOut(BaseModel):
    customer_id: str
    user_id: str | None
    anonymous_ids: list[str]
    stage: str | None
    stage_since: datetime | None
    orders: int
    revenue: float
    traits: dict
    first_seen_at: datetime
    last_seen_at: datetime


class TransitionOut(BaseModel):
    id: str
    from_stage: str | None
    to_stage: str
    reason: str
    rule_version: str
    cause_event_ids: list[str]
    event_time: datetime
    processed_at: datetime


async def _profile(request: Request, customer_id: str) -> repo.Profile:
    async with request.app.state.runtime.engine.connect() as conn:
        profile = await repo.find_profile(conn, customer_id=customer_id)
    if profile is None:
        raise HTTPException(404, f"no customer with id '{customer_id}'")
    return profile


# Ids may contain '/' (a path converter): the longer route is declared first.
@router.get("/{customer_id:path}/transitions", response_model=list[TransitionOut])
async def get_transitions(customer_id: CustomerId, request: Request) -> list[TransitionOut]:
    profile = await _profile(request, customer_id)
    async with request.app.state.runtime.engine.connect() as conn:
        rows = await repo.transitions_of(conn, profile_id=profile.id)
    return [TransitionOut(**row) for row in rows]


@router.get("/{customer_id:path}", response_model=ProfileOut)
async def get_profile(customer_id: CustomerId, request: Request) -> ProfileOut:
    profile = await _profile(request, customer_id)
    return ProfileOut(customer_id=profile.customer_id, user_id=profile.user_id,
                      anonymous_ids=profile.anonymous_ids,
                      stage=profile.stage.value if profile.stage else None,
                      stage_since=profile.stage_since, orders=len(profile.facts.order_ids),
                      revenue=float(profile.facts.revenue), traits=profile.traits,
                      first_seen_at=profile.first_seen_at, last_seen_at=profile.last_seen_at)
