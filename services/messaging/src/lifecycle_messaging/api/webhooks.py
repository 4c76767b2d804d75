"""The webhooks admin API (Bearer `LIFECYCLE_MESSAGING_ADMIN_TOKEN`): endpoints, secrets, the delivery log, replays.

`POST /v1/admin/webhooks`: register an endpoint; the answer carries its signing secret, the only time it
is shown. `POST .../{id}/rotate-secret`: a new secret, the old one still signing during the overlap.
`POST .../{id}/pause`, `.../resume`, `DELETE .../{id}`. `GET .../{id}/deliveries`: the delivery log;
`POST .../{id}/deliveries/{delivery}/replay` and `POST .../{id}/replay` (everything since a time) send
again with the same webhook-ids. See docs/webhooks.md.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response
from lifecycle_shared.auth import AdminAccess
from lifecycle_shared.http import Engine, Settings, errors
from lifecycle_shared.stages import Stage
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from lifecycle_messaging.db import webhooks as db
from lifecycle_messaging.domain.webhooks import EVENT_TYPES, MAX_URL_LENGTH, SECRET_BYTES, new_secret, url_problem
from lifecycle_messaging.settings import MessagingSettings

router = APIRouter(prefix="/v1/admin/webhooks", tags=["webhooks"], dependencies=[AdminAccess],
                   responses=errors(401, 403))

EventType = Literal["lifecycle.stage_changed", "identity.merged", "loyalty.reward_redeemed", "loyalty.debt_recorded",
                    "loyalty.tier_changed", "loyalty.points_expiring", "message.sent", "message.suppressed",
                    "message.failed", "message.unsubscribed", "webhook.endpoint_disabled"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]  # one list of what can be subscribed

EndpointId = Annotated[str, Path(pattern="^ep_[0-9a-f]{32}$", description="The endpoint's id (`ep_...`).")]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The delivery's id in the log.")]
MAX_OVERLAP_S = 7 * 24 * 3600


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("may not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text") from None
    return value


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, examples=["https://hooks.example.invalid/lifecycle"],
                     description="Where deliveries are posted: https:// (http:// and private addresses only in "
                                 "development). Redirects are not followed.")
    event_types: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    stages: list[Stage] | None = Field(None, min_length=1, max_length=len(Stage),
                                       description="lifecycle.stage_changed only for moves to these stages, "
                                                   "message.sent / .suppressed / .failed only for these stages' "
                                                   "messages (the other types have no stage); default: all")
    description: str = Field("", max_length=500)

    _text = field_validator("url", "description")(_storable)


REGISTER_EXAMPLES = {"crm": {"summary": "stage moves into purchase and loyalty, and merges", "value": {
    "url": "https://hooks.example.invalid/lifecycle", "event_types": ["lifecycle.stage_changed", "identity.merged"],
    "stages": ["purchase", "loyalty"], "description": "CRM sync"}}}


class EndpointOut(BaseModel):
    id: str
    url: str
    description: str
    event_types: list[str]
    stages: list[str] | None
    status: Literal["active", "paused", "disabled"]
    disabled_reason: str | None = Field(description="why it was disabled: a 410 answer, or failing for 5 days")
    failing_since: datetime | None = Field(description="first failure of the current run of failures")
    previous_secret_until: datetime | None = Field(description="until when the secret before the last rotation "
                                                                "still signs")
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="`whsec_` + base64: the signing secret. Shown this once; keep it.")


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_s: int = Field(24 * 3600, ge=0, le=MAX_OVERLAP_S,
                           description="how long the current secret keeps signing beside the new one")


class Rotated(BaseModel):
    id: str
    secret: str = Field(description="The new secret, shown this once.")
    previous_secret_until: datetime


class DeliveryOut(BaseModel):
    id: int
    webhook_id: str
    event_id: str
    event_type: str
    event_time: datetime
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="every delivery queued since then (ISO 8601 with a UTC offset)")
    only_failed: bool = False

    @field_validator("since")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        if not datetime(1970, 1, 2, tzinfo=UTC) <= value <= datetime(9999, 1, 1, tzinfo=UTC):
            raise ValueError("must be between 1970 and 9999")
        return value


class Replayed(BaseModel):
    replayed: int


def _endpoint(row: object) -> EndpointOut:
    return EndpointOut.model_validate(row, from_attributes=True)


def _not_found(endpoint_id: str) -> HTTPException:
    return HTTPException(404, f"no webhook endpoint {endpoint_id}")


@router.post("", status_code=201, response_model=EndpointCreated, responses=errors(400))
async def create_endpoint(endpoint: Annotated[EndpointIn, Body(openapi_examples=REGISTER_EXAMPLES)], engine: Engine,
                          settings: Settings) -> EndpointCreated:
    allow = isinstance(settings, MessagingSettings) and settings.webhooks_insecure_targets_allowed
    if problem := url_problem(endpoint.url, allow_insecure=allow):
        raise HTTPException(400, {"message": f"url: {problem}", "errors": [{"field": "url", "message": problem}]})
    secret = new_secret(secrets.token_bytes(SECRET_BYTES))
    async with engine.begin() as conn:
        row = await db.add_endpoint(conn, {
            "id": "ep_" + secrets.token_hex(16), "url": endpoint.url, "description": endpoint.description,
            "event_types": list(dict.fromkeys(endpoint.event_types)),
            "stages": list(dict.fromkeys(endpoint.stages)) if endpoint.stages else None, "secret": secret})
    return EndpointCreated(**_endpoint(row).model_dump(), secret=secret)


@router.get("", response_model=list[EndpointOut])
async def list_endpoints(engine: Engine) -> list[EndpointOut]:
    async with engine.connect() as conn:
        return [_endpoint(row) for row in await db.all_endpoints(conn)]


@router.get("/{endpoint_id}", response_model=EndpointOut, responses=errors(400, 404))
async def get_endpoint(endpoint_id: EndpointId, engine: Engine) -> EndpointOut:
    async with engine.connect() as conn:
        row = await db.endpoint(conn, endpoint_id)
    if row is None:
        raise _not_found(endpoint_id)
    return _endpoint(row)


@router.delete("/{endpoint_id}", status_code=204, responses=errors(400, 404))
async def delete_endpoint(endpoint_id: EndpointId, engine: Engine) -> Response:
    async with engine.begin() as conn:
        if not await db.delete_endpoint(conn, endpoint_id):
            raise _not_found(endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", response_model=Rotated, responses=errors(400, 404))
async def rotate_secret(endpoint_id: EndpointId, engine: Engine, rotation: RotateIn | None = None) -> Rotated:
    rotation = rotation or RotateIn()
    secret = new_secret(secrets.token_bytes(SECRET_BYTES))
    until = datetime.now(UTC) + timedelta(seconds=rotation.overlap_s)
    async with engine.begin() as conn:
        if await db.rotate_secret(conn, endpoint_id, secret=secret, previous_until=until) is None:
            raise _not_found(endpoint_id)
    return Rotated(id=endpoint_id, secret=secret, previous_secret_until=until)


@router.post("/{endpoint_id}/pause", response_model=EndpointOut, responses=errors(400, 404, 409))
async def pause_endpoint(endpoint_id: EndpointId, engine: Engine) -> EndpointOut:
    """Deliveries keep queueing and none is sent until it is resumed."""
    async with engine.begin() as conn:
        row = await db.endpoint(conn, endpoint_id)
        if row is None:
            raise _not_found(endpoint_id)
        if row.status == "disabled":
            raise HTTPException(409, {"code": "endpoint_disabled",
                                      "message": "the endpoint is disabled: resume it to deliver again"})
        row = await db.set_status(conn, endpoint_id, "paused")
    return _endpoint(row)


@router.post("/{endpoint_id}/resume", response_model=EndpointOut, responses=errors(400, 404))
async def resume_endpoint(endpoint_id: EndpointId, engine: Engine) -> EndpointOut:
    """A paused or disabled endpoint delivers again, what queued meanwhile first."""
    async with engine.begin() as conn:
        row = await db.set_status(conn, endpoint_id, "active", restart_failing=True)
    if row is None:
        raise _not_found(endpoint_id)
    return _endpoint(row)


@router.get("/{endpoint_id}/deliveries", response_model=list[DeliveryOut], responses=errors(400, 404))
async def list_deliveries(endpoint_id: EndpointId, engine: Engine,
                          status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
                          before: Annotated[int | None, Query(ge=1, le=2**63 - 1,
                                                              description="the last id of the previous page")] = None,
                          limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[DeliveryOut]:
    """Newest first, without payloads."""
    async with engine.connect() as conn:
        if await db.endpoint(conn, endpoint_id) is None:
            raise _not_found(endpoint_id)
        rows = await db.delivery_log(conn, endpoint_id, status=status, before=before, limit=limit)
    return [DeliveryOut.model_validate(row, from_attributes=True) for row in rows]


@router.post("/{endpoint_id}/deliveries/{delivery_id}/replay", response_model=DeliveryOut,
             responses=errors(400, 404))
async def replay_delivery(endpoint_id: EndpointId, delivery_id: DeliveryId, engine: Engine) -> DeliveryOut:
    """Send it again now, with the same webhook-id and a fresh retry schedule."""
    async with engine.begin() as conn:
        row = await db.replay_delivery(conn, endpoint_id, delivery_id, now=datetime.now(UTC))
    if row is None:
        raise HTTPException(404, f"no delivery {delivery_id} of webhook endpoint {endpoint_id}")
    return DeliveryOut.model_validate(row, from_attributes=True)


@router.post("/{endpoint_id}/replay", response_model=Replayed, responses=errors(400, 404))
async def replay_since(endpoint_id: EndpointId, replay: ReplayIn, engine: Engine) -> Replayed:
    """Every delivery queued since a time (or only the failed ones) again, same webhook-ids."""
    async with engine.begin() as conn:
        if await db.endpoint(conn, endpoint_id) is None:
            raise _not_found(endpoint_id)
        count = await db.replay_since(conn, endpoint_id, since=replay.since, now=datetime.now(UTC),
                                      only_failed=replay.only_failed)
    return Replayed(replayed=count)
