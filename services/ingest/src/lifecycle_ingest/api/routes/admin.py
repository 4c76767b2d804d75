"""Sources and API-key administration (Bearer admin token).

Keys are shown once, when created or rotated; listings show only their first characters. Every
change takes effect on every instance within `key_refresh_s` (lifecycle_ingest.keys).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.routing import APIRoute
from lifecycle_shared.auth import AdminAccess
from lifecycle_shared.errors import describe_error
from lifecycle_shared.http import Engine, errors
from pydantic import BaseModel, ConfigDict, Field

from lifecycle_ingest.api.deps import Keys, read_bounded
from lifecycle_ingest.db import keys as db
from lifecycle_ingest.db.keys import NewKey, SourceInfo
from lifecycle_ingest.domain.origins import MAX_ORIGINS, InvalidOrigin, normalise_origins
from lifecycle_ingest.domain.touchpoints import SOURCE_NAME
from lifecycle_ingest.keys import KeyStore

log = logging.getLogger(__name__)

MAX_ADMIN_BODY_BYTES = 64 * 1024
MAX_OVERLAP_S = 365 * 86400


class BoundedBodyRoute(APIRoute):
    """Reads at most MAX_ADMIN_BODY_BYTES of a request body (413 beyond) before FastAPI parses it,
    which it would otherwise do whole, whatever its size."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            body = await read_bounded(request, limit=MAX_ADMIN_BODY_BYTES)

            async def replay() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            return await handler(Request(request.scope, replay))

        return bounded


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminAccess], route_class=BoundedBodyRoute,
                   responses=errors(400, 401, 403, 413))

SourceName = Annotated[str, Path(pattern=SOURCE_NAME, description="Letters, digits, '.', '_' and '-'; at most 100.")]
KIND = ("'write' (lc_wk_: may be used from a browser) or 'server' (lc_sk_: server-side only, e.g. for orders "
        "and refunds).")


async def seen_here(keys: KeyStore) -> None:
    """After a committed change: this instance applies it at once (a key created here works here in
    the next request); the others within `key_refresh_s`."""
    try:
        await keys.refresh()
    except Exception as error:  # noqa: BLE001 - committed anyway; the background poll catches up
        log.warning("keys: refresh after an admin change failed", extra={"error": describe_error(error)})


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(pattern=SOURCE_NAME, description="Created if it does not exist.")
    kind: Literal["write", "server"] = Field("write", description=KIND)


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_s: int = Field(86400, ge=0, le=MAX_OVERLAP_S,
                           description="How long the old key keeps working, in seconds; 0 ends it now.")


class KeyOut(BaseModel):
    key_id: str
    source: str
    kind: Literal["write", "server"]
    key: str = Field(description="Shown only here; only its hash is stored.")
    prefix: str = Field(description="The key's first characters, as listings show them.")
    created_at: datetime

    @classmethod
    def of(cls, new_key: NewKey) -> KeyOut:
        return cls(key_id=new_key.key_id, source=new_key.source, kind=new_key.kind, key=new_key.key,
                   prefix=new_key.prefix, created_at=new_key.created_at)


class RotatedKeyOut(KeyOut):
    previous_expires_at: datetime = Field(description="When the rotated key stops working.")


class KeyInfoOut(BaseModel):
    key_id: str
    source: str
    kind: Literal["write", "server"]
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class OriginsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allowed_origins: list[Annotated[str, Field(max_length=300)]] = Field(
        max_length=MAX_ORIGINS, description="Exact browser origins, scheme://host[:port] (http or https, no path, "
                                            "no wildcard), e.g. https://shop.example.com. Replaces the list.")


class SourceOut(BaseModel):
    source: str
    allowed_origins: list[str]
    identity_verification: bool = Field(False, description="Whether the source has an identity-verification "
                                                           "secret (write-key events with `context.userHash`).")

    @classmethod
    def of(cls, info: SourceInfo) -> SourceOut:
        return cls(source=info.name, allowed_origins=info.allowed_origins,
                   identity_verification=info.identity_secret_created_at is not None)


class IdentitySecretOut(BaseModel):
    source: str
    identity_secret: str = Field(description=(
        "Shown only here. Your server computes `context.userHash` = hex HMAC-SHA256 of the signed-in userId "
        "keyed with it, and hands it to the page; never put the secret itself in a browser."))
    created_at: datetime


@router.post("/keys", status_code=201, response_model=KeyOut)
async def post_key(key_in: KeyIn, engine: Engine, keys: Keys) -> KeyOut:
    async with engine.begin() as conn:
        new_key = await db.create_key(conn, source_name=key_in.source, kind=key_in.kind)
    await seen_here(keys)
    return KeyOut.of(new_key)


@router.get("/keys", response_model=list[KeyInfoOut])
async def get_keys(engine: Engine, source: Annotated[str | None, Query(pattern=SOURCE_NAME)] = None
                   ) -> list[KeyInfoOut]:
    async with engine.connect() as conn:
        infos = await db.list_keys(conn, source_name=source)
    return [KeyInfoOut(**vars(info)) for info in infos]


@router.post("/keys/{key_id}/rotate", status_code=201, response_model=RotatedKeyOut, responses=errors(404))
async def rotate_key(key_id: UUID, engine: Engine, keys: Keys, rotate_in: RotateIn | None = None) -> RotatedKeyOut:
    overlap_s = (rotate_in or RotateIn()).overlap_s
    async with engine.begin() as conn:
        rotated = await db.rotate_key(conn, key_id=str(key_id), overlap_s=overlap_s)
        if rotated is None:
            raise HTTPException(404, "no live key with this id")
    await seen_here(keys)
    new_key, previous_expires_at = rotated
    return RotatedKeyOut(**KeyOut.of(new_key).model_dump(), previous_expires_at=previous_expires_at)


@router.delete("/keys/{key_id}", status_code=204, responses=errors(404))
async def delete_key(key_id: UUID, engine: Engine, keys: Keys) -> Response:
    async with engine.begin() as conn:
        if not await db.revoke_key(conn, key_id=str(key_id)):
            raise HTTPException(404, "no live key with this id")
    await seen_here(keys)
    return Response(status_code=204)


@router.put("/sources/{name}", response_model=SourceOut)
async def put_source(name: SourceName, origins_in: OriginsIn, engine: Engine, keys: Keys) -> SourceOut:
    try:
        origins = normalise_origins(origins_in.allowed_origins)
    except InvalidOrigin as error:
        raise HTTPException(400, str(error)) from None
    async with engine.begin() as conn:
        stored = await db.set_origins(conn, source_name=name, origins=origins)
    await seen_here(keys)
    return SourceOut.of(stored)


@router.get("/sources", response_model=list[SourceOut])
async def get_sources(engine: Engine) -> list[SourceOut]:
    async with engine.connect() as conn:
        listed = await db.list_sources(conn)
    return [SourceOut.of(info) for info in listed]


@router.post("/sources/{name}/identity-secret", status_code=201, response_model=IdentitySecretOut)
async def post_identity_secret(name: SourceName, engine: Engine, keys: Keys) -> IdentitySecretOut:
    """Create or rotate the source's identity-verification secret (the source is created if needed). The old
    secret stops verifying at once (on every instance within `key_refresh_s`): hashes made with it are
    refused (403 `identity_unverified`) until the pages carry new ones."""
    async with engine.begin() as conn:
        secret, created_at = await db.new_identity_secret(conn, source_name=name)
    await seen_here(keys)
    return IdentitySecretOut(source=name, identity_secret=secret, created_at=created_at)


@router.delete("/sources/{name}/identity-secret", status_code=204, responses=errors(404))
async def delete_identity_secret(name: SourceName, engine: Engine, keys: Keys) -> Response:
    """Stop verifying identities for the source: its write-key events are unverified again (and a
    `context.userHash` is refused, since nothing can check it)."""
    async with engine.begin() as conn:
        if not await db.drop_identity_secret(conn, source_name=name):
            raise HTTPException(404, "this source has no identity-verification secret")
    await seen_here(keys)
    return Response(status_code=204)
