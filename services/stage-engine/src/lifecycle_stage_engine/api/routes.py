"""The profile API storefronts call while rendering a page, and the customer list.

`GET /v1/customers/{id}` (id: a userId or anonymousId; a merged-away id answers its survivor):
stage, since when, previous stage, orders, revenue, first and last seen, last order, acquisition,
identities, the analytics `scores` (RFM, CLV, churn), and `show` - what to show this visitor (the rule
set's content table).
`GET /v1/customers/{id}/transitions`: the stored history, in event-time order, with reasons and causes.
`GET /v1/customers?stage=...&cursor=...`: live customers, optionally in one stage, cursor-paginated.
"""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from lifecycle_shared.auth import ApiAccess
from lifecycle_shared.db import read_only
from lifecycle_shared.events import TransitionRecord
from lifecycle_shared.http import CustomerId, Engine, errors
from lifecycle_shared.stages import Stage
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.api.deps import ReadEngine, RuleBookDep
from lifecycle_stage_engine.db import reads
from lifecycle_stage_engine.domain.profiles import Profile
from lifecycle_stage_engine.domain.rules import NEW_VISITOR

# Personal data: every route needs a token from LIFECYCLE_API_TOKENS.
router = APIRouter(prefix="/v1", tags=["customers"], dependencies=[ApiAccess], responses=errors(401, 403))


class LastOrder(BaseModel):
    order_id: str
    amount: float
    time: datetime


class ProfileOut(BaseModel):
    customer_id: str
    user_id: str | None
    anonymous_ids: list[str]
    stage: str | None
    stage_since: datetime | None
    previous_stage: str | None
    orders: int
    revenue: float
    last_order: LastOrder | None
    traits: dict
    first_seen_at: datetime
    last_seen_at: datetime
    acquisition: dict[str, str]
    show: str | None  # what to show this visitor now (the rule set's content table)


class CustomerOut(ProfileOut):
    identities: list[dict[str, str]]
    # The latest analytics refresh: RFM scores and segment, historic / predicted / total CLV, P(alive),
    # churn risk and band, average days between orders, expected next order; null before the first.
    scores: dict | None = None
    scored_at: datetime | None = None


class CustomerPage(BaseModel):
    customers: list[ProfileOut]
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last


class ContentOut(BaseModel):
    stage: str
    show: str | None


def profile_out(profile: Profile, content: dict[str, str]) -> dict:
    """The profile's fields; `show` from `content` (the rule set's content table)."""
    facts, stage = profile.state.facts, profile.state.stage
    last = facts.last_order
    return dict(customer_id=profile.customer_id, user_id=profile.user_id, anonymous_ids=profile.anonymous_ids,
                stage=stage, stage_since=profile.state.stage_since, previous_stage=profile.previous_stage,
                orders=len(facts.orders), revenue=float(facts.revenue),
                last_order=last and LastOrder(order_id=last.order_id, amount=float(last.amount), time=last.time),
                traits=profile.traits, first_seen_at=profile.first_seen_at, last_seen_at=profile.last_seen_at,
                acquisition=profile.acquisition, show=content.get(stage or NEW_VISITOR))


async def _found(conn: AsyncConnection, customer_id: str) -> tuple[Profile, list[dict[str, str]]]:
    found = await reads.find_profile(conn, customer_id=customer_id)
    if found is None:
        raise HTTPException(404, f"no customer with id '{customer_id}'")
    return found


@router.get("/customers", response_model=CustomerPage, responses=errors(400))
async def list_customers(engine: Engine, book: RuleBookDep, stage: Stage | None = None,
                         cursor: Annotated[str | None, Query(max_length=100)] = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100) -> CustomerPage:
    after = _decode_cursor(cursor) if cursor else None
    async with engine.connect() as conn:
        page = await reads.list_profiles(conn, stage=stage, after=after, limit=limit)
    next_cursor = base64.urlsafe_b64encode(page[-1].id.encode()).decode() if len(page) == limit else None
    content = book().content
    return CustomerPage(customers=[ProfileOut(**profile_out(p, content)) for p in page], next_cursor=next_cursor)


def _decode_cursor(cursor: str) -> str:
    """The profile id a cursor names; 400 for anything this API did not give out."""
    try:
        return str(uuid.UUID(base64.urlsafe_b64decode(cursor.encode()).decode()))
    except (binascii.Error, ValueError):
        raise HTTPException(400, "cursor: not one this API gave out") from None


@router.get("/content/{stage}", response_model=ContentOut, responses=errors(404))
async def content_for(stage: str, book: RuleBookDep) -> ContentOut:
    """What to show a visitor in `stage` (or `new_visitor`), without a profile lookup."""
    content = book().content
    if stage != NEW_VISITOR and stage not in {s.value for s in Stage}:
        raise HTTPException(404, f"no stage '{stage}'")
    return ContentOut(stage=stage, show=content.get(stage))


# Ids may contain '/' (a path converter): the longer route is declared first.
@router.get("/customers/{customer_id:path}/transitions", response_model=list[TransitionRecord],
            responses=errors(404))
async def get_transitions(customer_id: CustomerId, engine: Engine) -> list[TransitionRecord]:
    async with engine.connect() as conn:  # one connection a request: each checkout costs a ping round trip
        profile, _ = await _found(conn, customer_id)
        rows = await reads.history_of(conn, profile_id=profile.id)
    return [TransitionRecord(**row) for row in rows]


@router.get("/customers/{customer_id:path}", response_model=CustomerOut, responses=errors(404))
async def get_profile(customer_id: CustomerId, engine: ReadEngine, book: RuleBookDep) -> Response:
    """Storefronts call this while rendering a page: one statement on an autocommit connection without
    pre-ping (one database round trip), and the answer validated and encoded once by pydantic (returning the
    model would have FastAPI dump it, validate it again and encode it with json)."""
    found = await read_only(engine, functools.partial(reads.find_customer, customer_id=customer_id))
    if found is None:
        raise HTTPException(404, f"no customer with id '{customer_id}'")
    body = CustomerOut(**profile_out(found.profile, book().content), identities=found.identities,
                       scores=found.scores, scored_at=found.scored_at)
    return Response(body.model_dump_json(), media_type="application/json")
