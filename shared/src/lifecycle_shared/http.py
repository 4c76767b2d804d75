"""The HTTP side every service shares: app factory with `/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifecycle_shared.runtime import ServiceRuntime
from lifecycle_shared.settings import ServiceSettings


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, and for invalid input each field at fault."""

    success: bool = False
    error: str
    errors: list[dict[str, str]] | None = None


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes (route decorators)."""
    return {code: {"model": ErrorBody} for code in codes}


# A customer id in a path: what ingest could have accepted (no NUL; ids are at most 200 characters).
CustomerId = Annotated[str, Path(min_length=1, max_length=200, pattern="^[^\x00]+$",
                                 description="The customer's userId, or an anonymousId while anonymous.")]

ops = APIRouter(tags=["operations"])


@ops.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request) -> JSONResponse:
    checks = await request.app.state.runtime.readiness()
    return JSONResponse({"ready": all(checks.values()), "checks": checks},
                        status_code=200 if all(checks.values()) else 503)


@ops.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """Every error as {"success": false, "error": "...", "errors": [...]}, naming the problem."""
    detail = error.detail if isinstance(error.detail, dict) else {"error": str(error.detail)}
    return JSONResponse({"success": False, **detail}, status_code=error.status_code,
                        headers=getattr(error, "headers", None))


def create_service_app(*, title: str, settings: ServiceSettings,
                       build_runtime: Callable[[], ServiceRuntime], routers: list[APIRouter],
                       on_started: Callable[[FastAPI, ServiceRuntime], None] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime()
        await runtime.start()
        app.state.runtime = runtime
        if on_started:
            on_started(app, runtime)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, lifespan=lifespan, responses=errors(404))
    app.state.settings = settings
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.include_router(ops)
    for router in routers:
        app.include_router(router)
    return app
