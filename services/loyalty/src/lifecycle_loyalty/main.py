"""The loyalty app: consumes touchpoints and stage transitions; serves balances."""

from __future__ import annotations

from fastapi import FastAPI
from lifecycle_shared.http import create_service_app
from lifecycle_shared.runtime import ConsumerSpec, ServiceRuntime

from lifecycle_loyalty.api.routes import router
from lifecycle_loyalty.handlers import routes
from lifecycle_loyalty.settings import LoyaltySettings


def build_runtime(settings: LoyaltySettings) -> ServiceRuntime:
    topics = settings.kafka.topics
    return ServiceRuntime(
        service="loyalty", settings=settings,
        consumers=(ConsumerSpec(group="loyalty", topics=[topics.touchpoints, topics.stage_transitions],
                                route=routes()),),
    )


def create_app(settings: LoyaltySettings) -> FastAPI:
    return create_service_app(title="Lifecycle loyalty", settings=settings,
                              build_runtime=lambda: build_runtime(settings), routers=[router])
