"""CORS for browsers (analytics.js), with a per-source allowlist of exact origins.

A preflight carries neither key nor body, so it is answered for an origin on ANY live source's
list; every answer to such an origin carries `Access-Control-Allow-Origin` so the page can read
it (errors included). The per-source rule is enforced on the request itself, once the key is
known: an `Origin` its source does not list gets a 403 (`deps.authenticate`). Credentials are
never allowed (no cookies: the write key is in the body or the Basic header).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_HEADERS = b"Content-Type, Authorization, X-Retry-Count, X-Request-Id, traceparent, tracestate"
EXPOSE_HEADERS = b"X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
MAX_AGE_S = b"600"


class BrowserCors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _origin(scope)
        if origin is None or not scope["path"].startswith("/v1/") or scope["path"].startswith("/v1/admin"):
            return await self.app(scope, receive, send)
        allowed = scope["app"].state.keys.origin_allowed_anywhere(origin.decode("latin-1"))
        if scope["method"] == "OPTIONS":
            return await _preflight(send, origin if allowed else None, _requested_headers(scope))
        if not allowed:
            return await self.app(scope, receive, send)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_cors_headers(origin),
                                      (b"access-control-expose-headers", EXPOSE_HEADERS)]
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _origin(scope: Scope) -> bytes | None:
    if scope["type"] != "http":
        return None
    return next((value for name, value in scope["headers"] if name == b"origin"), None)


def _requested_headers(scope: Scope) -> bytes:
    """The headers a preflight asks for, allowed as asked (analytics.js adds `X-Retry-Count` on a retry,
    other clients their own); at most 1 KB, else the usual set."""
    asked = next((value for name, value in scope["headers"] if name == b"access-control-request-headers"), b"")
    return asked if 0 < len(asked) <= 1024 else ALLOW_HEADERS


def _cors_headers(origin: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]


async def _preflight(send: Send, origin: bytes | None, allow_headers: bytes) -> None:
    if origin is None:
        body = (b'{"success":false,"code":"origin_not_allowed","message":"this origin is on no source\'s '
                b'allowed_origins list (PUT /v1/admin/sources/{name})"}')
        headers = [(b"content-type", b"application/json"), (b"vary", b"Origin")]
        status = 403
    else:
        body = b""
        headers = [*_cors_headers(origin), (b"access-control-allow-methods", b"POST, OPTIONS"),
                   (b"access-control-allow-headers", allow_headers), (b"access-control-max-age", MAX_AGE_S)]
        status = 204
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
