"""One service at a time, in-process (ASGI + its lifespan), against real PostgreSQL and Kafka: its Kafka
settings in a test namespace and a client on the running app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from lifecycle_devstack.services import StackConfig
from lifecycle_shared.settings import KafkaSettings


def kafka_settings(config: StackConfig, **overrides) -> KafkaSettings:
    return KafkaSettings(**{"bootstrap_servers": config.kafka_bootstrap, "enable_idempotence": config.kafka_idempotence,
                            "topic_prefix": config.topic_prefix, **overrides})


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
            yield client
