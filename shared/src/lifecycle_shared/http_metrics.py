"""HTTP metrics per route: request count (with the status) and latency, labelled by the route's template
(`/v1/customers/{customer_id}`), never the raw path — a path carries customer ids, and raw paths are
unbounded. A request no route matched is counted under `route="unmatched"`."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifecycle_shared import metrics

UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class HttpMetricsMiddleware:
    """Outermost pure ASGI middleware: counts every answer, the exception handlers' included. An exception
    that escapes every handler is counted as a 500."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route, method = route_template(scope), scope.get("method", "GET")
            metrics.HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            metrics.HTTP_DURATION.labels(self.service, method, route).observe(time.perf_counter() - started)
