"""The stage-engine app: consumes touchpoints, serves profiles; nothing connects at import."""

from __future__ import annotations

from fastapi import FastAPI
from lifecycle_shared.http import create_service_app
from lifecycle_shared.runtime import ConsumerSpec, ServiceRuntime

from lifecycle_stage_engine.api.routes import router
from lifecycle_stage_engine.handlers import touchpoint_route
from lifecycle_stage_engine.settings import StageEngineSettings


def build_runtime(settings: StageEngineSettings) -> ServiceRuntime:
    topics = settings.kafka.topics
    return ServiceRuntime(
        service="stage-engine", settings=settings, relay=True,
        consumers=(ConsumerSpec(group="stage-engine", topics=[topics.touchpoints],
                                route=touchpoint_route(topics)),),
    )


def create_app(settings: StageEngineSettings) -> FastAPI:
    return create_service_app(title="Lifecycle stage engine", settings=settings,
                              build_runtime=lambda: build_runtime(settings), routers=[router])
