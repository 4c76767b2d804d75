"""Event endpoints: Segment's `/v1/track|identify|page|screen|group|alias|batch`, analytics.js's
short paths `/v1/t|i|p|s|g|a|b`, the native `/v1/touchpoints`, and Segment's `/v1/import` for
historical data (a batch whose events are published `historical`: recorded, nobody messaged).

One table, `ENDPOINTS`, declares them: the router below is generated from it (it documents them in
OpenAPI) and so is `BY_PATH`, which the fast lane (`api/lane.py`) serves them from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from lifecycle_ingest.api.deps import WRITE_KEY_SCHEME
from lifecycle_ingest.api.receive import receive_batch, receive_event
from lifecycle_ingest.api.schemas import EVENT_ERRORS, AcceptedOut, BatchOut, batch_body, touchpoint_body


class Handler(Protocol):
    """What answers an endpoint's request, given the endpoint's call type and whether its events are historical."""

    def __call__(self, request: Request, *, call_type: str | None, historical: bool) -> Awaitable[Response]: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A `POST` event endpoint: its path and undocumented aliases, the call type the path gives its events
    (None: each event's own), its request body and answer (as documented), what serves it, and whether its
    events are historical. `name` and `summary`/`description` are its OpenAPI operation's."""

    path: str
    aliases: tuple[str, ...]
    call_type: str | None
    request_body: dict[str, Any]
    response_model: type[BaseModel]
    handler: Handler
    name: str
    summary: str
    description: str | None = None
    historical: bool = False

    def serve(self, request: Request) -> Awaitable[Response]:
        return self.handler(request, call_type=self.call_type, historical=self.historical)


SHORT_PATHS = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group", "a": "alias"}
ENDPOINTS = (
    Endpoint("/v1/touchpoints", (), None, touchpoint_body(None), AcceptedOut, receive_event,
             name="post_touchpoint", summary="Send one touchpoint (type in the body)"),
    *(Endpoint(f"/v1/{call_type}", (f"/v1/{short}",), call_type, touchpoint_body(call_type), AcceptedOut,
               receive_event, name=f"post_{call_type}",
               summary=f"Segment-compatible {call_type} call (also at /v1/{short})")
      for short, call_type in SHORT_PATHS.items()),
    Endpoint("/v1/batch", ("/v1/b",), None, batch_body(), BatchOut, receive_batch, name="post_batch",
             summary="Segment-compatible batch: {\"batch\": [...]} (also at /v1/b)"),
    Endpoint("/v1/import", (), None, batch_body(), BatchOut, receive_batch, name="post_import", historical=True,
             summary="Historical data (Segment's import): a batch whose events are published with "
                     "`historical: true` - recorded, and nobody is messaged about them",
             description="Segment's path for historical data: a batch whose events are published `historical`."),
)
BY_PATH = {path: endpoint for endpoint in ENDPOINTS for path in (endpoint.path, *endpoint.aliases)}

# No FastAPI dependencies on the event routes: each costs a resolution per request, and the handlers
# read the key themselves (`authenticate`). The key's scheme is documented through `SECURITY`.
SECURITY: dict[str, Any] = {"security": [{WRITE_KEY_SCHEME: []}]}


def _router() -> APIRouter:
    """The FastAPI routes of `ENDPOINTS` (each alias the same route, undocumented)."""
    router = APIRouter(prefix="/v1", tags=["events"])
    for endpoint in ENDPOINTS:
        route = _route(endpoint)
        router.add_api_route(endpoint.path.removeprefix("/v1"), route, methods=["POST"], name=endpoint.name,
                             response_model=endpoint.response_model, responses=EVENT_ERRORS,
                             summary=endpoint.summary, description=endpoint.description,
                             openapi_extra=endpoint.request_body | SECURITY)
        for alias in endpoint.aliases:
            router.add_api_route(alias.removeprefix("/v1"), route, methods=["POST"], name=endpoint.name,
                                 include_in_schema=False)
    return router


def _route(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        return await endpoint.serve(request)

    return route


router = _router()


@router.post("/m", status_code=204, include_in_schema=False)
async def analytics_js_telemetry() -> Response:
    """analytics.js reports its own delivery metrics to `<apiHost>/m` unless told not to
    (`metrics: {sampleRate: 0}`): not events, answered and not read, so a browser's console stays clean."""
    return Response(status_code=204)
