"""The loyalty app: consumes touchpoints and stage transitions; serves balances; expires lots."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from lifecycle_shared.erasure import pepper_of
from lifecycle_shared.erasure_reports import report_router
from lifecycle_shared.http import create_service_app
from lifecycle_shared.pages import page_router
from lifecycle_shared.runtime import ConsumerSpec, ServiceRuntime

from lifecycle_loyalty.api.admin import router as admin_router
from lifecycle_loyalty.api.finance import router as finance_router
from lifecycle_loyalty.api.redemptions import admin_router as rewards_admin_router
from lifecycle_loyalty.api.redemptions import router as redemptions_router
from lifecycle_loyalty.api.routes import router
from lifecycle_loyalty.handlers import routes
from lifecycle_loyalty.settings import LoyaltySettings
from lifecycle_loyalty.workers.expiry import expiry_worker

FINANCE_PAGE = Path(__file__).parent / "finance_page"


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_runtime(settings: LoyaltySettings, clock: Callable[[], datetime] = utc_now) -> ServiceRuntime:
    topics = settings.kafka.topics
    return ServiceRuntime(
        service="loyalty", settings=settings, relay=True,  # loyalty-events.v1, through the outbox
        consumers=(ConsumerSpec(group="loyalty", topics=[topics.touchpoints, topics.stage_transitions],
                                route=routes(topics=topics, erasure_pepper=pepper_of(settings.erasure_pepper))),),
        workers=(expiry_worker(clock=clock, every_s=settings.expiry_interval_s),),
    )


def create_app(settings: LoyaltySettings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """`clock`: what the routes and the expiry worker take as now; tests pass a controllable one."""

    def started(app: FastAPI, runtime: ServiceRuntime) -> None:
        app.state.clock = clock

    return create_service_app(title="Lifecycle loyalty", settings=settings, on_started=started,
                              build_runtime=lambda: build_runtime(settings, clock),
                              routers=[router, redemptions_router, admin_router, rewards_admin_router,
                                       finance_router, page_router("/finance", FINANCE_PAGE), report_router()])
