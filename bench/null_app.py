"""The "no-Kafka FastAPI endpoint" baseline: what FastAPI + uvicorn alone serve on this machine.

`POST /v1/track` reads the body, parses it as JSON and answers `{"success": true}`: no auth, no
validation, no broker. Served exactly as the services are, through `lifecycle_shared.cli.serve`
(same uvicorn options: no access log, no log config, same GC tuning), one process.

    LIFECYCLE_NULL_PORT=8099 python bench/null_app.py    # or, with bench/ on sys.path, -m null_app
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from lifecycle_shared import cli
from lifecycle_shared.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class NullSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_NULL_")


def create_app(settings: NullSettings | None = None) -> FastAPI:
    app = FastAPI(title="bench null endpoint", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/v1/track")
    async def track(request: Request) -> dict:
        json.loads(await request.body())
        return {"success": True}

    @app.get("/readyz")
    async def readyz() -> dict:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    settings = NullSettings()
    cli.serve(create_app(settings), settings)
