"""Bounded in-flight work: beyond `limit` requests being handled at once, ingest answers 503 with
`Retry-After` at once, before reading the body, instead of queueing work it cannot finish in time
(a client's timeout is worse than a quick "retry shortly": Segment's libraries back off and retry a 503).
Events in flight to the broker are bounded separately (`TouchpointPublisher`, also a 503)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

BUSY = (b'{"success":false,"code":"overloaded","message":"too many requests in progress; nothing was '
        b'accepted, retry after Retry-After seconds"}')


class InflightLimit:
    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        if self.inflight >= self.limit:
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", b"1"),
                (b"content-length", str(len(BUSY)).encode())]})
            return await send({"type": "http.response.body", "body": BUSY})
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
