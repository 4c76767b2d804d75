"""The messaging app: consumes stage transitions, delivers email, serves the message log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from lifecycle_shared.erasure import pepper_of
from lifecycle_shared.erasure_reports import report_router
from lifecycle_shared.http import create_service_app
from lifecycle_shared.pages import page_router
from lifecycle_shared.runtime import ConsumerSpec, ServiceRuntime

from lifecycle_messaging.api import consent
from lifecycle_messaging.api.campaigns import router as campaigns_router
from lifecycle_messaging.api.lift import router as lift_router
from lifecycle_messaging.api.routes import router
from lifecycle_messaging.api.webhooks import router as webhooks_router
from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.catalogue import shipped
from lifecycle_messaging.delivery import contact_sweeper, email_worker, links_of
from lifecycle_messaging.handlers import routes_and_webhooks
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness, utc_now
from lifecycle_messaging.workers.webhooks import message_events, webhook_worker

# The campaigns page: per campaign sent / held / suppressed by reason and the lift with its interval, drawn from
# `GET /v1/campaigns/lift` (messaging's figures; the stage engine's dashboard links here).
CAMPAIGNS_PAGE = Path(__file__).parent / "campaigns_page"


def build_runtime(settings: MessagingSettings, book: CampaignBook,
                  clock: Callable[[], datetime] = utc_now) -> ServiceRuntime:
    freshness = Freshness(clock=clock, window=settings.freshness)
    shipped()  # the templates, read and validated now: a broken one stops the start, never a send

    async def load_campaigns(runtime: ServiceRuntime) -> None:  # before any consumer or worker starts
        await book.start(runtime.engine)

    async def campaigns_poll(runtime: ServiceRuntime) -> None:
        await book.poll(runtime.engine, every_s=settings.campaigns_refresh_s)

    return ServiceRuntime(
        service="messaging", settings=settings, prepare=load_campaigns,
        consumers=(ConsumerSpec(group="messaging",
                                topics=[settings.kafka.topics.stage_transitions, settings.kafka.topics.touchpoints,
                                        settings.kafka.topics.loyalty_events],
                                route=routes_and_webhooks(brand=settings.brand_name, freshness=freshness,
                                                          default_locale=settings.default_locale,
                                                          links=links_of(settings, freshness), book=book,
                                                          erasure_pepper=pepper_of(settings.erasure_pepper),
                                                          shop_url=settings.shop_url,
                                                          shop_zone=settings.shop_zone)),),
        # The campaigns in force: the handlers, the delivery worker and the admin routes all read them.
        shared=(campaigns_poll,),
        workers=(email_worker(settings, freshness, book), contact_sweeper(settings),
                 webhook_worker(settings), message_events(settings)),
    )


def create_app(settings: MessagingSettings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """`clock`: what the consumer and the delivery worker take as now when they judge whether a
    transition is still news (`freshness_s`) and whether a delay is over, and what consent changes and
    unsubscribe links are stamped and checked with; tests pass a fixed one."""
    book = CampaignBook()
    app = create_service_app(title="Lifecycle messaging", settings=settings,
                             build_runtime=lambda: build_runtime(settings, book, clock),
                             routers=[router, lift_router, page_router("/campaigns", CAMPAIGNS_PAGE), webhooks_router,
                                      campaigns_router, consent.operator, consent.public, report_router()])
    app.state.clock = clock  # the routes' `Now` (consent changes, unsubscribe links' expiry)
    app.state.campaigns = book  # the admin routes refresh it after a change
    return app
