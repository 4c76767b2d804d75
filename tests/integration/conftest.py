"""One service at a time, in-process (ASGI + its lifespan), against real PostgreSQL and Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import SERVICES, StackConfig
from lifecycle_shared.settings import KafkaSettings


@pytest.fixture(scope="module")
def namespace(infra: Infra) -> StackConfig:
    config = infra.stack_config()
    infra.prepare(config, services=SERVICES)
    return config


def kafka_settings(config: StackConfig, **overrides) -> KafkaSettings:
    return KafkaSettings(**{"bootstrap_servers": config.kafka_bootstrap, "enable_idempotence": config.kafka_idempotence,
                            "topic_prefix": config.topic_prefix, **overrides})


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
            yield client


@asynccontextmanager
async def stage_engine_client(config: StackConfig, *, api_token: str, admin_token: str, sends: str,
                              clock: Callable[[], datetime] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The stage engine in-process with both tokens configured; the client sends `sends` as its Bearer token.
    `clock`: the service's now (a test whose data ends at a fixed moment passes that moment)."""
    from lifecycle_devstack.services import BY_NAME
    from lifecycle_stage_engine.main import create_app
    from lifecycle_stage_engine.settings import StageEngineSettings

    settings = StageEngineSettings(database_url=config.database_url(BY_NAME["stage-engine"]),
                                   kafka=kafka_settings(config), api_tokens=api_token, admin_token=admin_token)
    app = create_app(settings) if clock is None else create_app(settings, clock=clock)
    async with running(app) as client:
        client.headers["authorization"] = f"Bearer {sends}"
        yield client
