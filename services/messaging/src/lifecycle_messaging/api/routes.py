"""`GET /v1/customers/{id}/messages`: every message for a customer, in order."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from lifecycle_shared.auth import ApiAccess
from lifecycle_shared.http import CustomerId, Engine, errors
from pydantic import BaseModel

from lifecycle_messaging.db import repository as repo

# Personal data: every route needs a token from LIFECYCLE_API_TOKENS.
router = APIRouter(prefix="/v1/customers", tags=["messages"], dependencies=[ApiAccess], responses=errors(401, 403))


class MessageOut(BaseModel):
    id: str
    customer_id: str
    template: str
    stage: str
    cause_event_id: str
    channel: str
    recipient: str | None
    subject: str
    # awaiting_contact | queued | sent | failed | superseded (a repeat from another key of the person)
    # | suppressed (not sent; `suppressed_reason` says why: superseded, stale, ...)
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
