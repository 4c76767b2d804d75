"""Each service's record of the erasures it applied (docs/erasure.md): the `erasures` table the stage engine,
messaging and loyalty each keep (erasure id, keyed hashes, counts per table, requested_at), read back, and the
`GET /v1/erasures/{erasure_id}` messaging and loyalty serve it at; and their route of
`customer.erasure_requested` (`erasure_route`).

That route takes the read-API token (LIFECYCLE_API_TOKENS, shared by the services), not an admin token: the
stage engine assembles its report from these with the token it already has, and a report holds counts only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_shared.auth import ApiAccess
from lifecycle_shared.db import recorded_erasure
from lifecycle_shared.errors import PermanentError
from lifecycle_shared.events import ErasureRequestedData
from lifecycle_shared.http import Engine, errors
from lifecycle_shared.kafka.registry import Emitted, Route, Typed


class AppliedErasure(BaseModel):
    """One service's erasure: what it deleted or anonymised, per table (the first run's counts)."""

    erasure_id: str
    requested_at: datetime
    counts: dict[str, int]


def as_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


async def applied(conn: AsyncConnection, erasure_id: str) -> AppliedErasure | None:
    """The erasure this service applied under `erasure_id`; None: not (yet), or not a uuid."""
    the_id = as_uuid(erasure_id)
    row = await recorded_erasure(conn, the_id) if the_id else None
    return None if row is None else AppliedErasure(erasure_id=row.erasure_id, requested_at=row.requested_at,
                                                   counts=dict(row.counts))


def report_router() -> APIRouter:
    """`GET /v1/erasures/{erasure_id}`: 200 with this service's counts once it applied the erasure, else 404. A read
    route (the API token), not under /v1/admin/ (the admin token's): see the module's docstring."""
    router = APIRouter(prefix="/v1", tags=["erasure"], dependencies=[ApiAccess], responses=errors(401, 403))

    @router.get("/erasures/{erasure_id}", response_model=AppliedErasure, responses=errors(404))
    async def get_erasure(erasure_id: str, engine: Engine) -> AppliedErasure:
        async with engine.connect() as conn:
            found = await applied(conn, erasure_id)
        if found is None:
            raise HTTPException(404, "no erasure applied here under this id (yet)")
        return found

    return router


class Erase(Protocol):
    async def __call__(self, conn: AsyncConnection, erasure_id: str, hashes: list[str], *, pepper: bytes,
                       now: datetime) -> Any: ...


def erasure_route(erase: Erase, pepper: bytes | None) -> Route:
    """`customer.erasure_requested` for a service that follows erasures (messaging, loyalty): erase the customer
    the keyed hashes name with the service's own `db.erasure.erase`. Without the deployment's pepper the service
    cannot tell whose rows they are: the event is refused as permanent (dead-lettered, to be re-sent once the pepper
    is set), never skipped - an erasure silently ignored is the one failure this must not have. Announces nothing:
    the counts are kept in the service's `erasures` table (`report_router`)."""

    async def handle(conn: AsyncConnection, events: list[Typed[ErasureRequestedData]]) -> Emitted:
        if not pepper:
            raise PermanentError("customer.erasure_requested needs LIFECYCLE_ERASURE_PEPPER")
        for typed in events:
            await erase(conn, typed.data.erasure_id, typed.data.id_hashes, pepper=pepper, now=typed.data.requested_at)
        return []

    return Route(ErasureRequestedData, handle)
