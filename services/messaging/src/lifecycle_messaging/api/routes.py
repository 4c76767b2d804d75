"""`GET /v1/customers/{id}/messages`: every message for a customer, in order."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from lifecycle_shared.auth import ApiAccess
from lifecycle_shared.http import CustomerId, Engine, errors
from pydantic import BaseModel, Field

from lifecycle_messaging.db import repository as repo

# Personal data: every route needs a token from LIFECYCLE_API_TOKENS.
router = APIRouter(prefix="/v1/customers", tags=["messages"], dependencies=[ApiAccess], responses=errors(401, 403))


class MessageOut(BaseModel):
    id: str
    customer_id: str
    template: str
    campaign: str = Field(description="the campaign's id (admin API /v1/admin/campaigns; the default campaigns' "
                                      "ids are their templates' names)")
    campaign_version: int | None = Field(None, description="the campaign version that made it (null: made before "
                                                           "campaigns were versioned)")
    trigger: str | None = Field(None, description="what started it: stage_changed, touchpoint, loyalty (null: a "
                                                  "transition, before this was kept)")
    not_before: datetime | None = Field(None, description="a delayed campaign's message: not sent before then")
    stage: str
    cause_event_id: str
    channel: str
    recipient: str | None
    subject: str
    # awaiting_contact | queued | sent | failed | superseded (a repeat from another key of the person)
    # | suppressed (not sent; `suppressed_reason` says why: superseded, stale, consent, holdout, frequency_cap,
    # cancelled, audience, campaign_disabled)
    status: str
    suppressed_reason: str | None = None
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@router.get("/{customer_id:path}/messages", response_model=list[MessageOut])
async def get_messages(customer_id: CustomerId, engine: Engine) -> list[MessageOut]:
    async with engine.connect() as conn:
        rows = await repo.messages_for(conn, customer_id=customer_id)
    return [MessageOut(**row) for row in rows]
