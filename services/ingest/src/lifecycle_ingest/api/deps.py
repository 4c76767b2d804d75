"""Request dependencies: the service's parts, write-key authentication, bounded body reading."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import zlib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from lifecycle_shared import metrics
from starlette.requests import ClientDisconnect

from lifecycle_ingest.api.overload import InflightLimit
from lifecycle_ingest.domain.json_values import UnparseableBody, parse_checked
from lifecycle_ingest.keys import ApiKey, KeyStore
from lifecycle_ingest.publisher import TouchpointPublisher
from lifecycle_ingest.ratelimit import RateLimiter
from lifecycle_ingest.settings import IngestSettings


# The parts `main.py` puts on the app. The event handlers, which the fast lane (`lane.py`) calls without
# FastAPI's dependency injection, read them with these functions; FastAPI routes ask for `Keys`.
def settings_of(request: Request) -> IngestSettings:
    return request.app.state.settings


def publisher_of(request: Request) -> TouchpointPublisher:
    return request.app.state.publisher


def key_store_of(request: Request) -> KeyStore:
    return request.app.state.keys


def rate_limiter_of(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


def inflight_of(request: Request) -> InflightLimit:
    return request.app.state.inflight


Keys = Annotated[KeyStore, Depends(key_store_of)]


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the key's record, the key as sent, and the rate-limit headers to answer with."""

    key: ApiKey
    key_text: str
    headers: dict[str, str]


# Incompressible data grows a little when gzipped: the compressed body may exceed the limit by this.
GZIP_SLACK = 16 * 1024
WRITE_KEY_SCHEME = "WriteKey"
# Segment's convention, documented in OpenAPI (`main.py` adds it to the components): the key as the
# HTTP Basic user with an empty password; analytics.js sends it in the body instead.
WRITE_KEY_SECURITY_SCHEME = {"type": "http", "scheme": "basic", "description": (
    "A write key (lc_wk_..., browser-safe) or a server key (lc_sk_...) as the HTTP Basic user, the password "
    "empty; or as `writeKey` in the JSON body (analytics.js). Events that move money or points "
    "(Order Completed, Order Refunded, Referral Completed, Review Written) need a server key.")}


def _key_text(request: Request, body: Any) -> str:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, _ = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, ValueError):  # not base64 (non-ASCII text is a ValueError), not UTF-8
            user = ""
        return user
    if isinstance(body, dict):
        in_body = body.get("writeKey")
        if in_body is None and isinstance(body.get("batch"), list) and body["batch"]:
            first = body["batch"][0]
            in_body = first.get("writeKey") if isinstance(first, dict) else None
        return in_body if isinstance(in_body, str) else ""
    return ""


def authenticate(request: Request, *, body: Any, events: int) -> Caller:
    """The key from the Basic header or the body's `writeKey`; 401 unless live, 403 when the request
    comes from a browser origin the key's source does not allow, 429 beyond the key's rate."""
    key_text = _key_text(request, body)
    if not key_text:
        raise HTTPException(401, "missing write key: send it as the HTTP Basic user with an empty password, "
                                 "or as `writeKey` in the body", headers={"WWW-Authenticate": "Basic"})
    key = key_store_of(request).lookup(key_text)
    if key is None:
        raise HTTPException(401, "unknown, expired or revoked key", headers={"WWW-Authenticate": "Basic"})
    origin = request.headers.get("origin")
    if origin is not None and origin not in key.allowed_origins:
        raise HTTPException(403, {"code": "origin_not_allowed",
                                  "message": f"origin not allowed for source '{key.source}': add it with "
                                             f"PUT /v1/admin/sources/{key.source}"})
    decision = rate_limiter_of(request).take(key.key_id, events, time.monotonic())
    if not decision.allowed:
        metrics.INGESTED.labels("rate_limited").inc(events)
        rate = settings_of(request).rate_limit_events_per_s
        raise HTTPException(429, f"rate limit: this key may send {rate:g} events per second; retry after "
                                 "Retry-After seconds", headers=decision.headers())
    return Caller(key=key, key_text=key_text, headers=decision.headers())


async def json_body(request: Request, *, limit: int, max_depth: int) -> tuple[Any, bool]:
    """Read at most `limit` bytes (after gunzip; the gzip itself at most GZIP_SLACK more) within the
    settings' `body_timeout_s`, and parse JSON; 413/408/400 otherwise. With the value, whether it is
    known storable to `max_depth` levels (json_values.parse_checked)."""
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    try:
        async with asyncio.timeout(settings_of(request).body_timeout_s):
            body = await read_bounded(request, limit=limit, gzipped=gzipped)
    except TimeoutError:
        raise HTTPException(408, "the body did not arrive in time") from None
    except ClientDisconnect:  # nobody reads this answer; no error log per vanished client
        raise HTTPException(400, "the client went away before its body arrived") from None
    try:
        return parse_checked(body, max_depth=max_depth)
    except UnparseableBody as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None


async def read_bounded(request: Request, *, limit: int, gzipped: bool = False) -> bytes:
    """The body, at most `limit` bytes (after gunzip; the gzip itself at most GZIP_SLACK more), read
    as it arrives: 413 beyond, whether the size was declared or not."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit + GZIP_SLACK * gzipped:
        raise HTTPException(413, f"body larger than {limit} bytes")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    body, size, received = [], 0, 0
    async for chunk in request.stream():
        received += len(chunk)
        if inflater is not None:
            if received > limit + GZIP_SLACK:  # a gzip header's comment or empty blocks, unbounded
                raise HTTPException(413, f"compressed body larger than {limit + GZIP_SLACK} bytes")
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
    return b"".join(body)

