"""Request dependencies: write-key authentication, bounded body reading."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
import zlib
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_ingest.db.keys import source_for_key
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


def _write_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, _ = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return user
    raise HTTPException(401, "missing or malformed write key: send it as the HTTP Basic user "
                             "with an empty password", headers={"WWW-Authenticate": "Basic"})


async def authenticated_source(request: Request) -> str:
    source = await request.app.state.key_cache.source(_write_key(request))
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
    try:
        return json.loads(b"".join(body))
    except (ValueError, UnicodeDecodeError) as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None


async def admin_token(request: Request) -> None:
    expected = request.app.state.settings.admin_token
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if expected is None:
        raise HTTPException(403, "admin API disabled: set LIFECYCLE_INGEST_ADMIN_TOKEN")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise HTTPException(401, "missing or invalid admin token", headers={"WWW-Authenticate": "Bearer"})


async def get_settings(request: Request) -> IngestSettings:
    return request.app.state.settings


async def get_publisher(request: Request) -> TouchpointPublisher:
    return request.app.state.publisher


Source = Annotated[str, Depends(authenticated_source)]
Settings = Annotated[IngestSettings, Depends(get_settings)]
Publisher = Annotated[TouchpointPublisher, Depends(get_publisher)]
AdminAccess = Depends(admin_token)
