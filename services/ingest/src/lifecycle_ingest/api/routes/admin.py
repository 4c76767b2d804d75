"""Source and write-key administration (Bearer admin token)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, Response
from lifecycle_shared.http import errors
from pydantic import BaseModel, ConfigDict, Field

from lifecycle_ingest.api.deps import AdminAccess
from lifecycle_ingest.db.keys import create_key, revoke_key
from lifecycle_ingest.domain.touchpoints import SOURCE_NAME

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminAccess], responses=errors(400, 401, 403))


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(pattern=SOURCE_NAME)


class KeyOut(BaseModel):
    key_id: str
    source: str
    write_key: str = Field(description="Shown once; only its hash is stored.")


@router.post("/keys", status_code=201, response_model=KeyOut)
async def post_key(key_in: KeyIn, request: Request) -> KeyOut:
    async with request.app.state.runtime.engine.begin() as conn:
        new_key = await create_key(conn, source_name=key_in.source)
    return KeyOut(key_id=new_key.key_id, source=new_key.source_name, write_key=new_key.key)


@router.delete("/keys/{key_id}", status_code=204)
async def delete_key(key_id: UUID, request: Request) -> Response:
    async with request.app.state.runtime.engine.begin() as conn:
        if not await revoke_key(conn, key_id=str(key_id)):
            raise HTTPException(404, "no live key with this id")
    return Response(status_code=204)
