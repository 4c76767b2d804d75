"""Messaging driven by hand: its routes and the delivery worker's judging on a fixed clock, the events it reads
built by hand, and a shop of its handlers and delivery worker with campaigns of a test's own (`Shop`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_messaging.campaignbook import CampaignBook
from lifecycle_messaging.consenting import Links
from lifecycle_messaging.db import campaigns as campaign_db
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.domain.campaigns import CampaignSpec
from lifecycle_messaging.handlers import routes
from lifecycle_messaging.queueing import Rendering
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.events import (
    STAGE_CHANGED_TYPE,
    TOUCHPOINT_TYPE_PREFIX,
    CloudEvent,
    StageChangedData,
    TouchpointData,
    touchpoint_type,
)
from lifecycle_shared.kafka.registry import Router
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.topics import Topics
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.kafka_records import record


def freshness_at(now: datetime, settings: MessagingSettings | None = None) -> Freshness:
    """The freshness window of `settings` (the defaults unless given), judged at `now`."""
    settings = settings or MessagingSettings(environment="development")
    return Freshness(clock=lambda: now, window=settings.freshness)


def messaging_routes(now: datetime) -> Router:
    """Messaging's handlers as the service routes them, its clock stopped at `now`."""
    settings = MessagingSettings(environment="development")
    return routes(brand=settings.brand_name, freshness=freshness_at(now, settings))


def messaging_namespace(infra: Infra) -> StackConfig:
    """A namespace of its own with the topics and messaging's database only (for a module that drives messaging)."""
    config = infra.stack_config()
    infra.prepare(config, services=[BY_NAME["messaging"]])
    return config


def rendering(brand: str = "Shop", *, links: Links | None = None, book: CampaignBook | None = None) -> Rendering:
    """What the stage_changed handler renders with: the campaigns (default: the shipped ones), the brand, links."""
    return Rendering(book=book or CampaignBook(), brand=brand, links=links)


@dataclass
class Clock:
    """A clock the test moves: what the service takes as now."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def stage_event(customer: str, from_stage: str | None, to_stage: str, at: datetime, *, reason: str = "r",
                traits: dict[str, Any] | None = None, orders: int = 0, historical: bool = False) -> CloudEvent:
    """The stage engine's transition of a known user `customer` (address `<customer>@example.com` unless
    `traits` says otherwise)."""
    data = StageChangedData(customer_id=customer, user_id=customer, from_stage=from_stage, to_stage=to_stage,
                            reason=reason, rule_version="v", cause_event_ids=[str(uuid.uuid4())], event_time=at,
                            processed_at=at, traits={"email": f"{customer}@example.com", **(traits or {})},
                            orders=orders, historical=historical)
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=at,
                      subject=customer, data=data.model_dump(mode="json"))


def track_event(customer: str, event: str, at: datetime, /, *, historical: bool = False, **properties) -> CloudEvent:
    """A storefront's track call `event` ("Product Added") of the known user `customer`, sent with a server key,
    with these `properties`."""
    message_id = str(uuid.uuid4())
    data = TouchpointData(type="track", event=event, userId=customer, messageId=message_id, properties=properties,
                          timestamp=at, receivedAt=at, historical=historical, verified=True)
    return CloudEvent(id=f"shop/{message_id}", source="/sources/shop", type=touchpoint_type("track", event), time=at,
                      subject=customer, data=data.model_dump(mode="json"))


def loyalty_event(event_type: str, data: BaseModel, *, customer: str, at: datetime) -> CloudEvent:
    return CloudEvent(id=str(uuid.uuid4()), source="/loyalty", type=event_type, time=at, subject=customer,
                      data=data.model_dump(mode="json"))


def topic_of(event: CloudEvent, topics: Topics) -> str:
    """Where the event travels."""
    if event.type.startswith(TOUCHPOINT_TYPE_PREFIX):
        return topics.touchpoints
    return topics.stage_transitions if event.source == "/stage-engine" else topics.loyalty_events


@dataclass
class Shop:
    """Messaging's handlers and delivery worker on one clock, with the campaigns the database holds (`engine`:
    messaging's database)."""

    engine: AsyncEngine
    settings: MessagingSettings
    clock: Clock
    book: CampaignBook = field(default_factory=CampaignBook)
    offset: int = 0
    erasure_pepper: bytes | None = None

    @property
    def freshness(self) -> Freshness:
        return Freshness(clock=self.clock, window=self.settings.freshness)

    async def consume(self, *events: CloudEvent) -> None:
        runner = ConsumerRunner(name="messaging-test", consumer=None, producer=None, engine=self.engine,
                                route=routes(brand="Shop", freshness=self.freshness, book=self.book,
                                             erasure_pepper=self.erasure_pepper,
                                             shop_url=self.settings.shop_url, shop_zone=self.settings.shop_zone))
        records = []
        for event in events:
            self.offset += 1
            records.append(record("topic", self.offset, event.to_bytes(), key=event.subject.encode()))
        await runner.process(records)

    async def deliver(self) -> None:
        for _ in range(30):
            if not await deliver_once(SimpleNamespace(engine=self.engine), self.settings, self.freshness, self.book):
                return
        raise AssertionError("the delivery worker never settled")

    async def log(self, customer: str) -> dict[str, dict]:
        async with self.engine.connect() as conn:
            return {m["campaign"]: m for m in await repo.messages_for(conn, customer_id=customer)}

    async def campaign(self, campaign_id: str, **spec) -> None:
        """A campaign of the test's own, in the database and in force."""
        body = {"name": campaign_id, "template": "retention_offer", **spec}
        async with self.engine.begin() as conn:
            assert await campaign_db.create(conn, campaign_id, CampaignSpec.model_validate(body)) is not None
        await self.book.refresh(self.engine)
