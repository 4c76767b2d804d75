"""Campaign lift end to end (issue 16): stage transitions through messaging's real handlers and delivery worker
(real PostgreSQL, real SMTP server - aiosmtpd, the session's sink), orders and refunds through the real
`Order Completed` / `Order Refunded` handlers, then `GET /v1/campaigns/{campaign}/lift` on the service's app -
all on one clock the test moves."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db.models import holdout_assignments
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.handlers import routes
from lifecycle_messaging.main import create_app
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import STAGE_CHANGED_TYPE, CloudEvent, StageChangedData, TouchpointData
from lifecycle_shared.kafka.runner import ConsumerRunner
from sqlalchemy import select

from tests.support.in_process import kafka_settings, running
from tests.support.kafka_records import record
from tests.support.messaging import messaging_namespace

START = datetime(2026, 3, 2, 10, tzinfo=UTC)
TOKEN = "lift-test-api-token-7c1e"
PEOPLE = 300


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def namespace(infra):
    return messaging_namespace(infra)  # a database per test: the campaign's figures are the test's alone


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

    async def lift(self, campaign: str, *, holdout_share: float) -> dict:
        settings = MessagingSettings(environment="development", role="api", api_tokens=TOKEN,
                                     holdout_share=holdout_share, database_url=self.settings.database_url,
                                     kafka=self.settings.kafka)
        async with running(create_app(settings, clock=self.clock)) as client:
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


async def test_a_campaign_that_sells_shows_a_positive_lift_with_an_interval_above_zero(namespace, mail_sink):
    _, port = mail_sink
    shop = Shop(namespace, port, holdout_share=0.5)
    try:
        campaign, groups = await welcome_everyone(shop)
        held = sorted(p for p, g in groups.items() if g == "holdout")
        treated = sorted(p for p, g in groups.items() if g == "treatment")
        assert 100 <= len(held) <= 200
        # Two days on: half the treated people order, a tenth of the held out; one treated buyer in ten refunds.
        shop.clock.now = START + timedelta(days=2)
        buyers = treated[::2] + held[::10]
        orders = [shop.touchpoint(p, "Order Completed", order_id=f"o-{p}", revenue=50) for p in buyers]
        orders.append(orders[0])  # a redelivery: counted once
        await shop.consume(orders)
        await shop.consume([shop.touchpoint(p, "Order Refunded", order_id=f"o-{p}") for p in treated[::20]])
        # After the window: held-out people buying late do not count.
        shop.clock.now = START + timedelta(days=9)
        await shop.consume([shop.touchpoint(p, "Order Completed", order_id=f"late-{p}", revenue=80) for p in held])
        shop.clock.now = START + timedelta(days=10)

        lift = await shop.lift(campaign, holdout_share=0.5)
    finally:
        await shop.engine.dispose()

    assert lift["status"] == "measured", lift["reasons"]
    assert lift["holdout"]["eligible"] == len(held) and lift["treatment"]["eligible"] == len(treated)
    assert lift["holdout"]["sent"] == 0 and lift["treatment"]["sent"] == len(treated)
    assert lift["holdout"]["converted"] == len(held[::10]) and lift["treatment"]["converted"] == len(treated[::2])
    assert lift["treatment"]["revenue"] == 50 * (len(treated[::2]) - len(treated[::20]))
    assert lift["holdout"]["revenue"] == 50 * len(held[::10])
    difference = lift["conversion_difference"]
    assert difference["estimate"] > 0.3 and difference["interval"]["low"] > 0 and difference["significant"]
    assert not lift["sample_ratio"]["alarm"]
    assert lift["messages"]["sent"] == len(treated)
    assert lift["messages"]["suppressed"] == {"holdout": len(held)}
    assert lift["minimum_detectable_effect"] is not None and lift["minimum_detectable_effect"] < 0.2


async def test_a_holdout_split_unlike_the_configured_share_raises_the_sample_ratio_alarm(namespace, mail_sink):
    """The share changed under a running campaign: half were held out, the API checks against 10%."""
    _, port = mail_sink
    shop = Shop(namespace, port, holdout_share=0.5)
    try:
        campaign, groups = await welcome_everyone(shop)
        shop.clock.now = START + timedelta(days=1)
        lift = await shop.lift(campaign, holdout_share=0.1)
    finally:
        await shop.engine.dispose()
    assert lift["sample_ratio"]["alarm"] and lift["sample_ratio"]["p_value"] < 0.001
    assert lift["sample_ratio"]["expected_share"] == 0.1
    assert 0.35 < lift["sample_ratio"]["observed_share"] < 0.65
    assert lift["holdout"]["converted"] == lift["treatment"]["converted"] == 0
    assert lift["status"] == "not_enough_data"  # nobody bought yet: the alarm stands regardless
    assert lift["minimum_detectable_effect"] is not None
