"""The fast lane for events: `POST` to the event paths served straight from ASGI."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from lifecycle_shared.http import error_body
from starlette.types import ASGIApp, Receive, Scope, Send

from lifecycle_ingest.api.routes.events import BY_PATH


class EventLane:
    """Serves `POST` to the event paths straight from ASGI, from the very table the router is generated
    from (`routes.events.ENDPOINTS`, which the router documents in OpenAPI). Measured: FastAPI's routing
    and request handling cost about as much as ingest's own work on a single event. What the lane skips is
    only that; errors are answered as everywhere (`error_body`), anything unexpected reaches the app's
    error middleware as a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = BY_PATH.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if endpoint is None:
            return await self.app(scope, receive, send)
        scope["route"] = endpoint  # its `path` names it in the metrics and the request's span, as a route would
        try:
            response = await endpoint.serve(Request(scope, receive))
        except HTTPException as error:
            response = JSONResponse(error_body(error.status_code, error.detail), status_code=error.status_code,
                                    headers=error.headers)
        await response(scope, receive, send)
