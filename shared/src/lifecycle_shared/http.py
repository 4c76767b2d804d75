"""The HTTP side every service shares: app factory with `/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifecycle_shared.http_metrics import HttpMetricsMiddleware
from lifecycle_shared.logging import register_secrets
from lifecycle_shared.runtime import ServiceRuntime
from lifecycle_shared.settings import ServiceSettings


class ErrorBody(BaseModel):
    """Every error answer. `code` and `message` are what Segment's client libraries read and
    report; `errors` names each field at fault for invalid input."""

    success: bool = False
    code: str = Field(description="Stable machine-readable reason, e.g. `invalid_request`, `rate_limited`.")
    message: str = Field(description="What went wrong, for a person.")
    errors: list[dict[str, str]] | None = None


# The code of an error answer when the route does not name a more precise one.
STATUS_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 408: "request_timeout", 413: "payload_too_large",
                415: "unsupported_media_type", 429: "rate_limited", 503: "unavailable"}


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes (route decorators)."""
    return {code: {"model": ErrorBody} for code in codes}


# A customer id in a path: what ingest could have accepted (no NUL; ids are at most 200 characters).
CustomerId = Annotated[str, Path(min_length=1, max_length=200, pattern="^[^\x00]+$",
                                 description="The customer's userId, or an anonymousId while anonymous.")]


# The dependencies below are `async def` on purpose: FastAPI runs a plain `def` dependency in anyio's thread
# pool, a thread hand-off per dependency per request (a third of a read's CPU in the profile API's py-spy run).
async def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def _engine(request: Request) -> AsyncEngine:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime.engine


async def _settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


# What a route may ask for (parameters typed with these; none adds a request parameter): the running
# service's runtime, its database engine, its settings.
Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
Engine = Annotated[AsyncEngine, Depends(_engine)]
Settings = Annotated[ServiceSettings, Depends(_settings)]

ops = APIRouter(tags=["operations"])


@ops.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(runtime: Runtime) -> JSONResponse:
    checks = await runtime.readiness()
    return JSONResponse({"ready": all(checks.values()), "checks": checks},
                        status_code=200 if all(checks.values()) else 503)


@ops.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def error_body(status: int, detail: Any) -> dict[str, Any]:
    """{"success": false, "code": ..., "message": ..., ...}: `detail` is the message, or a dict
    with `message` (and optionally `code`, `errors` and route-specific fields)."""
    detail = dict(detail) if isinstance(detail, dict) else {"message": str(detail)}
    return {"success": False, "code": detail.pop("code", STATUS_CODES.get(status, "error")), **detail}


async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(error_body(error.status_code, error.detail), status_code=error.status_code,
                        headers=getattr(error, "headers", None))


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """A request that does not fit the route's model: 400 naming each field, never the input."""
    problems = [{"field": ".".join(str(part) for part in e["loc"][1:]) or str(e["loc"][0]), "message": e["msg"]}
                for e in error.errors()[:20]]
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return JSONResponse(error_body(400, {"message": message, "errors": problems}), status_code=400)


class RequestIdMiddleware:
    """Echoes the client's `X-Request-Id` (a printable token of at most 200 characters) on the
    answer, or gives one; the same id is in `scope["state"]["request_id"]` for the route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        if not (0 < len(request_id) <= 200 and request_id.isascii() and request_id.decode().isprintable()):
            request_id = uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_service_app(*, title: str, settings: ServiceSettings,
                       build_runtime: Callable[[], ServiceRuntime], routers: list[APIRouter],
                       on_started: Callable[[FastAPI, ServiceRuntime], Awaitable[None] | None] | None = None,
                       on_stopping: Callable[[FastAPI], Awaitable[None]] | None = None,
                       security_schemes: dict[str, dict[str, Any]] | None = None,
                       middlewares: Sequence[Callable[[ASGIApp], ASGIApp]] = ()) -> FastAPI:
    """`on_started` (sync or async) adds the service's own parts once the runtime runs; `on_stopping`
    stops them before the runtime (and its engine) stops, also when `on_started` failed half-way.
    `security_schemes`: OpenAPI schemes that routes name in their `security` without a dependency.
    `middlewares` (pure ASGI classes, the first innermost) run inside the request-id one, so every answer
    carries the id.
    In the `consumer` role (`settings.role`) the app serves only `/healthz`, `/readyz` and `/metrics`: neither
    `routers` nor `middlewares` are added."""
    serves_api = settings.role != "consumer"
    register_secrets(*(token.get_secret_value() for token in settings.api_tokens),
                     *([settings.admin_token.get_secret_value()] if settings.admin_token else []))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime()
        await runtime.start()
        app.state.runtime = runtime
        try:
            started = on_started(app, runtime) if on_started else None
            if inspect.isawaitable(started):
                await started
            yield
        finally:
            try:
                if on_stopping:
                    await on_stopping(app)
            finally:
                await runtime.stop()

    # FastAPI's own OpenTelemetry (spans with the raw path, which names customers; logs of exception messages)
    # stays off: the request's span is HttpMetricsMiddleware's, named by the route template.
    app = FastAPI(title=title, lifespan=lifespan, responses=errors(404),
                  telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})
    app.state.settings = settings
    # Starlette types a handler as taking any Exception, though it only ever passes the class registered.
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    for middleware in middlewares if serves_api else ():
        app.add_middleware(middleware)
    app.add_middleware(RequestIdMiddleware)
    # Outermost: every answer counted, by route template ("Lifecycle stage engine" -> "stage-engine").
    app.add_middleware(HttpMetricsMiddleware, service=title.removeprefix("Lifecycle ").replace(" ", "-"))
    app.include_router(ops)
    for router in routers if serves_api else ():
        app.include_router(router)
    app.openapi = lambda: _without_422(app, security_schemes or {})  # type: ignore[method-assign]  # FastAPI's documented way
    return app


def _without_422(app: FastAPI, security_schemes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI document as the app answers: a body that does not fit is a 400 (`validation_error`),
    never FastAPI's default 422."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(security_schemes)
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", {"description": "Invalid request: names each field at fault",
                                             "content": {"application/json": {
                                                 "schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
