"""The HTTP side every service shares: app factory with `/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifecycle_shared.runtime import ServiceRuntime
from lifecycle_shared.settings import ServiceSettings

ops = APIRouter(tags=["operations"])


@ops.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@ops.get("/readyz")
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

    app = FastAPI(title=title, lifespan=lifespan)
    app.state.settings = settings
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.include_router(ops)
    for router in routers:
        app.include_router(router)
    return app
