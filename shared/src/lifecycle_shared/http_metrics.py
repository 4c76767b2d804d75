"""HTTP metrics per route: request count (with the status) and latency, labelled by the route's template
(`/v1/customers/{customer_id}`), never the raw path — a path carries customer ids, and raw paths are
unbounded. A request no route matched is counted under `route="unmatched"`.

With tracing on (`lifecycle_shared.tracing`), the same middleware opens the request's SERVER span: the child of
the caller's W3C `traceparent` when it sent a valid one, else a new trace; named `METHOD route-template`
(probes and scrapes excepted)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifecycle_shared import metrics, tracing

UNMATCHED = "unmatched"
# Probes and scrapes, every few seconds from Kubernetes and Prometheus: counted, never traced.
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


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

        span = _server_span(scope) if tracing.enabled() and scope["path"] not in UNTRACED else None
        try:
            with trace.use_span(span, end_on_exit=False) if span is not None else nullcontext():
                await self.app(scope, receive, send_status)
        finally:
            route, method = route_template(scope), scope.get("method", "GET")
            if span is not None:
                span.update_name(f"{method} {route}")
                span.set_attributes({"http.route": route, "http.response.status_code": status})
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
                span.end()
            metrics.HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            metrics.HTTP_DURATION.labels(self.service, method, route).observe(time.perf_counter() - started)


def _server_span(scope: Scope) -> Any:
    headers = [(name.decode("latin-1"), value) for name, value in scope["headers"]]
    parent = tracing.context_from_headers(headers)
    return tracing.tracer().start_span(
        scope.get("method", "GET"), context=parent if parent is not None else Context(), kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": scope.get("method", "GET"), "url.scheme": scope.get("scheme", "http")})
