"""The stage-engine app: consumes touchpoints, sweeps time-based stages, serves profiles, rules and
replays; nothing connects at import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI
from lifecycle_shared.db import create_read_engine
from lifecycle_shared.http import create_service_app
from lifecycle_shared.runtime import ConsumerSpec, ServiceRuntime

from lifecycle_stage_engine.analytics.dashboard import router as dashboard_router
from lifecycle_stage_engine.analytics.routes import admin_router as analytics_admin_router
from lifecycle_stage_engine.analytics.routes import router as analytics_router
from lifecycle_stage_engine.api.admin import router as admin_router
from lifecycle_stage_engine.api.erasures import router as erasures_router
from lifecycle_stage_engine.api.routes import router
from lifecycle_stage_engine.handlers import routes
from lifecycle_stage_engine.rulebook import RuleBook
from lifecycle_stage_engine.settings import StageEngineSettings
from lifecycle_stage_engine.workers.analytics import analytics_worker
from lifecycle_stage_engine.workers.replays import replay_worker
from lifecycle_stage_engine.workers.sweeper import sweeper


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_runtime(settings: StageEngineSettings, rulebook: RuleBook,
                  clock: Callable[[], datetime] = utc_now) -> ServiceRuntime:
    topics = settings.kafka.topics

    async def load_rules(runtime: ServiceRuntime) -> None:
        await rulebook.refresh(runtime.engine)

    async def rules_poll(runtime: ServiceRuntime) -> None:
        await rulebook.poll(runtime.engine, every_s=settings.rules_refresh_s)

    return ServiceRuntime(
        service="stage-engine", settings=settings, relay=True, prepare=load_rules,
        consumers=(ConsumerSpec(group="stage-engine", topics=[topics.touchpoints],
                                route=routes(topics=topics, rules=rulebook, clock=clock)),),
        # The rule set in force: the handlers and the routes (GET /v1/admin/rules, profiles) both read it.
        shared=(rules_poll,),
        workers=(sweeper(rules=rulebook, clock=clock, every_s=settings.sweep_interval_s),
                 replay_worker(clock=clock),
                 analytics_worker(clock=clock, options=settings.scoring_options(),
                                  every_s=settings.analytics_interval_s, rules=rulebook)),
    )


def create_app(settings: StageEngineSettings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """`clock`: what every part of the service takes as now (the consumer, the sweeper, replays, the
    analytics worker and the routes' default ranges); tests pass a fixed one."""
    rulebook = RuleBook(rules_file=settings.rules_file)

    def started(app: FastAPI, runtime: ServiceRuntime) -> None:
        app.state.rulebook = rulebook
        app.state.clock = clock
        app.state.read_engine = create_read_engine(settings.database_url)

    async def stopping(app: FastAPI) -> None:
        if engine := getattr(app.state, "read_engine", None):
            await engine.dispose()

    return create_service_app(title="Lifecycle stage engine", settings=settings, on_started=started,
                              on_stopping=stopping,
                              build_runtime=lambda: build_runtime(settings, rulebook, clock),
                              routers=[router, admin_router, erasures_router, analytics_router, analytics_admin_router,
                                       dashboard_router])
