"""Request dependencies: write-key authentication, bounded body reading."""

from __future__ import annotations

import base64
import binascii
import hmac
import time
import zlib
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_ingest.db.keys import source_for_key
from lifecycle_ingest.domain.json_values import UnparseableBody, parse
from lifecycle_ingest.publisher import TouchpointPublisher
from lifecycle_ingest.settings import IngestSettings


class KeyCache:
    """Write key -> source name, remembered for `ttl_s` so revocation takes effect within it."""

    def __init__(self, *, engine: AsyncEngine, ttl_s: float) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[str | None, float]] = {}

    async def source(self, key: str) -> str | None:
        cached = self._entries.get(key)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        async with self._engine.connect() as conn:
            source = await source_for_key(conn, key=key)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (source, now + self._ttl_s)
        return source


class WriteKeyAuth(HTTPBasic):
    """Segment's convention: the write key is the HTTP Basic user, the password empty.
    (A subclass of FastAPI's HTTPBasic so OpenAPI documents the scheme; the parsing is ours, to
    name the fix in the 401.)"""

    async def __call__(self, request: Request) -> str:  # type: ignore[override]
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, _ = base64.b64decode(credentials, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = ""
            if user:
                return user
        raise HTTPException(401, "missing or malformed write key: send it as the HTTP Basic user "
                                 "with an empty password", headers={"WWW-Authenticate": "Basic"})


write_key_auth = WriteKeyAuth(scheme_name="WriteKey", description="The write key as the Basic user, "
                                                                   "the password empty.")
admin_bearer = HTTPBearer(auto_error=False, scheme_name="AdminToken",
                          description="LIFECYCLE_INGEST_ADMIN_TOKEN as a Bearer token.")


async def authenticated_source(request: Request, write_key: Annotated[str, Depends(write_key_auth)]) -> str:
    source = await request.app.state.key_cache.source(write_key)
    if source is None:
        raise HTTPException(401, "unknown or revoked write key", headers={"WWW-Authenticate": "Basic"})
    return source


async def json_body(request: Request, *, limit: int) -> Any:
    """Read at most `limit` bytes (after gunzip) and parse JSON; 413/400 otherwise."""
    declared = request.headers.get("content-length")
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    if declared and declared.isdigit() and int(declared) > limit and not gzipped:
        raise HTTPException(413, f"body larger than {limit} bytes")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    body, size = [], 0
    async for chunk in request.stream():
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, limit + 1 - size)
            except zlib.error:
                raise HTTPException(400, "body is not valid gzip") from None
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        body.append(chunk)
    if inflater is not None and (not inflater.eof or inflater.unused_data):
        raise HTTPException(400, "body is not valid gzip: truncated, or data after its end")
    try:
        return parse(b"".join(body))
    except UnparseableBody as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None


async def admin_token(request: Request, bearer: Annotated[Any, Depends(admin_bearer)]) -> None:
    expected = request.app.state.settings.admin_token
    if expected is None:
        raise HTTPException(403, "admin API disabled: set LIFECYCLE_INGEST_ADMIN_TOKEN")
    token = bearer.credentials if bearer is not None else ""
    if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise HTTPException(401, "missing or invalid admin token", headers={"WWW-Authenticate": "Bearer"})


async def get_settings(request: Request) -> IngestSettings:
    return request.app.state.settings


async def get_publisher(request: Request) -> TouchpointPublisher:
    return request.app.state.publisher


Source = Annotated[str, Depends(authenticated_source)]
Settings = Annotated[IngestSettings, Depends(get_settings)]
Publisher = Annotated[TouchpointPublisher, Depends(get_publisher)]
AdminAccess = Depends(admin_token)
