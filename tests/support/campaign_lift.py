"""A shop for campaign lift, driven by hand: messaging's real handlers (stage transitions, orders, refunds) and
delivery worker on a clock the caller moves, real PostgreSQL and SMTP; the app served in-process or over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI
from lifecycle_devstack.ports import free_port
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db.models import holdout_assignments
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.handlers import routes
from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import (
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    CloudEvent,
    IdentityMergedData,
    StageChangedData,
    TouchpointData,
)
from lifecycle_shared.kafka.runner import ConsumerRunner
from sqlalchemy import select

from tests.support.in_process import kafka_settings, running
from tests.support.kafka_records import record

START = datetime(2026, 3, 2, 10, tzinfo=UTC)
TOKEN = "lift-test-api-token-7c1e"
PEOPLE = 300


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


class Shop:
    def __init__(self, namespace, port: int, *, holdout_share: float) -> None:
        self.clock = Clock()
        self.settings = MessagingSettings(environment="development", smtp_port=port, holdout_share=holdout_share,
                                          quiet_hours="off", cap_per_day=0, cap_per_week=0,
                                          database_url=namespace.database_url(BY_NAME["messaging"]),
                                          kafka=kafka_settings(namespace))
        self.engine = create_engine(self.settings.database_url)
        self.freshness = Freshness(clock=self.clock, window=self.settings.freshness)
        self.runner = ConsumerRunner(name="lift-test", consumer=None, producer=None, engine=self.engine,
                                     route=routes(brand="Shop", freshness=self.freshness))
        self.offset = 0

    async def consume(self, events: list[CloudEvent]) -> None:
        records = []
        for event in events:
            self.offset += 1
            records.append(record("topic", self.offset, event.to_bytes(), key=(event.subject or "").encode()))
        await self.runner.process(records)

    def welcome(self, customer: str) -> CloudEvent:
        now = self.clock.now
        data = StageChangedData(customer_id=customer, user_id=customer, from_stage=None, to_stage="awareness",
                                reason="r", rule_version="v", cause_event_ids=[str(uuid.uuid4())], event_time=now,
                                processed_at=now, traits={"email": f"{customer}@example.com"})
        return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=now,
                          subject=customer, data=data.model_dump(mode="json"))

    def touchpoint(self, customer: str, event: str, **properties) -> CloudEvent:
        now = self.clock.now
        data = TouchpointData(type="track", event=event, userId=customer, messageId=str(uuid.uuid4()), timestamp=now,
                              receivedAt=now, verified=True, properties=properties)
        kind = "touchpoint." + event.lower().replace(" ", "_")
        return CloudEvent(id=f"src/{data.messageId}", source="/ingest", type=kind, time=now, subject=customer,
                          data=data.model_dump(mode="json"))

    def merge(self, absorbed: str, survivor: str) -> CloudEvent:
        """The stage engine's merge of the anonymous key `absorbed` into the known `survivor`."""
        now = self.clock.now
        data = IdentityMergedData(survivor_id=survivor, absorbed_id=absorbed, absorbed_ids=[absorbed], user_id=survivor,
                                  reason="identify", cause_event_ids=["c"], event_time=now, processed_at=now)
        return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=now,
                          subject=survivor, data=data.model_dump(mode="json"))

    async def deliver(self) -> None:
        runtime = type("Runtime", (), {"engine": self.engine})()
        for _ in range(200):
            if not await deliver_once(runtime, self.settings, self.freshness):
                return
        raise AssertionError("the delivery worker never settled")

    async def groups(self) -> tuple[str, dict[str, str]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(holdout_assignments))).all()
        campaigns = {row.campaign for row in rows}
        assert len(campaigns) == 1, campaigns
        return campaigns.pop(), {row.person: row.group for row in rows}

    def api_app(self, *, holdout_share: float) -> FastAPI:
        settings = MessagingSettings(environment="development", role="api", api_tokens=TOKEN,
                                     holdout_share=holdout_share, database_url=self.settings.database_url,
                                     kafka=self.settings.kafka)
        return create_app(settings, clock=self.clock)

    async def lift(self, campaign: str, *, holdout_share: float) -> dict:
        async with running(self.api_app(holdout_share=holdout_share)) as client:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            assert (await client.get(f"/v1/campaigns/{campaign}/lift")).status_code == 401
            one = await client.get(f"/v1/campaigns/{campaign}/lift", headers=headers)
            every = await client.get("/v1/campaigns/lift", headers=headers)
            assert (await client.get("/v1/campaigns/no-such-campaign/lift", headers=headers)).status_code == 404
        assert one.status_code == 200, one.text
        assert every.status_code == 200 and one.json() in every.json()
        return one.json()


async def welcome_everyone(shop: Shop) -> tuple[str, dict[str, str]]:
    customers = [f"lift-{uuid.uuid4().hex[:6]}-{i:03d}" for i in range(PEOPLE)]
    await shop.consume([shop.welcome(customer) for customer in customers])
    await shop.deliver()
    return await shop.groups()


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app over real HTTP on 127.0.0.1 (uvicorn in this event loop, lifespan included); its origin."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the app never started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
