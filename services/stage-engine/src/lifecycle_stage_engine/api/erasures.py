"""GDPR erasure, the one call (docs/erasure.md; admin token).

`POST /v1/admin/erasures` {"id": any id of the customer}: erases them here and announces
`customer.erasure_requested` (messaging and loyalty follow it) - 202 with the report; the same customer again (by
any of their erased ids) - 200 with the same report, nothing erased; an id nobody has and no erasure knows - 404.
`GET /v1/admin/erasures/{erasure_id}`: the report, assembled from this service's counts and messaging's and
loyalty's own reports (`pending` while one has not applied it or cannot be reached)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, HTTPException, Response
from lifecycle_shared.auth import AdminAccess
from lifecycle_shared.erasure import pepper_of
from lifecycle_shared.erasure_reports import as_uuid
from lifecycle_shared.http import Engine, Settings, errors
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lifecycle_stage_engine.api.deps import Now
from lifecycle_stage_engine.db import erasure as records
from lifecycle_stage_engine.db.erasure import ErasureReport
from lifecycle_stage_engine.erasure import REPORTING_SERVICES, assembled, erase_and_announce
from lifecycle_stage_engine.settings import StageEngineSettings

router = APIRouter(prefix="/v1/admin", tags=["erasure"], dependencies=[AdminAccess], responses=errors(401, 403))

PEER_TIMEOUT_S = 5.0


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern="^[^\x00]+$",
                    description="Any id of the customer: a userId, an anonymousId or the customer key.")

    @field_validator("id")
    @classmethod
    def _storable(cls, value: str) -> str:
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("not valid Unicode text") from None
        return value


class ServicePart(BaseModel):
    status: Literal["pending", "complete"]
    counts: dict[str, int] | None = Field(description="Rows deleted or anonymised per table; null while pending.")


class ErasureOut(BaseModel):
    erasure_id: str
    requested_at: datetime
    status: Literal["pending", "complete"]
    services: dict[str, ServicePart]


@router.post("/erasures", status_code=202, response_model=ErasureOut,
             responses={200: {"model": ErasureOut, "description": "Erased before: the first run's report"},
                        **errors(404, 503)})
async def request_erasure(body: ErasureIn, engine: Engine, settings: Settings, now: Now,
                          response: Response) -> dict[str, Any]:
    pepper = pepper_of(getattr(settings, "erasure_pepper", None))
    if pepper is None:
        raise HTTPException(503, "erasure needs LIFECYCLE_ERASURE_PEPPER (the same value in every service)")
    async with engine.begin() as conn:
        report = await erase_and_announce(conn, body.id, pepper=pepper, now=now,
                                          topic=settings.kafka.topics.stage_transitions)
    if report is None:
        raise HTTPException(404, "no customer and no erasure has this id")
    if report.repeated:
        response.status_code = 200
    return await _report(report, settings)


@router.get("/erasures/{erasure_id}", response_model=ErasureOut, responses=errors(404))
async def get_erasure(erasure_id: str, engine: Engine, settings: Settings) -> dict[str, Any]:
    the_id = as_uuid(erasure_id)
    async with engine.connect() as conn:
        report = await records.recorded(conn, the_id) if the_id else None
    if report is None:
        raise HTTPException(404, "no erasure with this id")
    return await _report(report, settings)


async def _report(report: ErasureReport, settings: Any) -> dict[str, Any]:
    assert isinstance(settings, StageEngineSettings)
    urls = {"ingest": settings.ingest_url, "messaging": settings.messaging_url, "loyalty": settings.loyalty_url}
    token = settings.api_tokens[0].get_secret_value() if settings.api_tokens else ""
    async with httpx.AsyncClient(timeout=PEER_TIMEOUT_S, headers={"authorization": f"Bearer {token}"}) as client:
        reported = {name: await _counts(client, urls[name], report.erasure_id) for name in REPORTING_SERVICES}
    return assembled(report, reported)


async def _counts(client: httpx.AsyncClient, base_url: str | None, erasure_id: str) -> dict[str, int] | None:
    """A service's counts for the erasure; None when it has not applied it, is not configured or not reachable."""
    if not base_url:
        return None
    try:
        answer = await client.get(f"{base_url.rstrip('/')}/v1/erasures/{erasure_id}")
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    counts: dict[str, int] = answer.json()["counts"]
    return counts
