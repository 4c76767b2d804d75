"""The gateway in the send path (issue 16): holdout, quiet hours in the customer's zone, frequency caps per
local day, and freshness measured without the gateway's own wait. Messaging's handlers and delivery worker
in-process on a clock the test moves, real PostgreSQL, real SMTP server (aiosmtpd, the session's sink)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.db.models import holdout_assignments, messages
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.domain.holdout import held_out
from lifecycle_messaging.handlers import routes
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
from prometheus_client import REGISTRY
from sqlalchemy import select

from tests.support.kafka_records import record
from tests.support.messaging import messaging_namespace

SAIGON, NEW_YORK = ZoneInfo("Asia/Ho_Chi_Minh"), ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def namespace(infra):
    return messaging_namespace(infra)


@pytest.fixture
async def runtime(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    yield SimpleNamespace(engine=engine)
    await engine.dispose()


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Shop:
    """Messaging's handlers and delivery worker on one clock."""

    runtime: SimpleNamespace
    settings: MessagingSettings
    clock: Clock
    freshness: Freshness
    offset: int = 0

    async def transition(self, customer: str, from_stage: str | None, to_stage: str, *, zone: ZoneInfo | str | None,
                         at: datetime | None = None) -> None:
        """The stage engine's transition of `customer` at `at` (now), consumed now."""
        at = at or self.clock.now
        traits = {"email": f"{customer}@example.com", "firstName": "An"}
        if zone is not None:
            traits["timezone"] = zone if isinstance(zone, str) else zone.key
        data = StageChangedData(customer_id=customer, user_id=customer, from_stage=from_stage, to_stage=to_stage,
                                reason="r", rule_version="v", cause_event_ids=[str(uuid.uuid4())], event_time=at,
                                processed_at=at, traits=traits)
        event = CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=at,
                           subject=customer, data=data.model_dump(mode="json"))
        runner = ConsumerRunner(name="messaging-test", consumer=None, producer=None, engine=self.runtime.engine,
                                route=routes(brand="Shop", freshness=self.freshness))
        self.offset += 1
        await runner.process([record("topic", self.offset, event.to_bytes(), key=customer.encode())])

    async def deliver(self) -> None:
        """Delivery rounds at the clock's time until nothing more is claimed (or all of it is held)."""
        for _ in range(20):
            if not await deliver_once(self.runtime, self.settings, self.freshness):
                return
        raise AssertionError("the delivery worker never settled")

    async def log(self, customer: str) -> dict[str, dict]:
        async with self.runtime.engine.connect() as conn:
            return {m["template"]: m for m in await repo.messages_for(conn, customer_id=customer)}


def shop_at(runtime, port: int, now: datetime, *, holdout_share: float = 0.0,
            freshness: timedelta = timedelta(days=1), shop_timezone: str = "UTC") -> Shop:
    settings = MessagingSettings(environment="development", smtp_port=port, holdout_share=holdout_share,
                                 shop_timezone=shop_timezone, quiet_hours="21:00-08:00", cap_per_day=1, cap_per_week=3)
    clock = Clock(now)
    return Shop(runtime, settings, clock, Freshness(clock=clock, window=freshness))


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


def suppressed_count(reason: str) -> float:
    return REGISTRY.get_sample_value("lifecycle_messaging_messages_suppressed_total", {"reason": reason}) or 0.0


def received(sink, customer: str) -> list[str]:
    return [m["X-Lifecycle-Template"] for m in sink.to(f"{customer}@example.com")]


async def test_a_marketing_message_at_night_in_saigon_is_held_and_sent_at_eight_local(runtime, mail_sink):
    sink, port = mail_sink
    customer = f"night-{uuid.uuid4().hex[:8]}"
    shop = shop_at(runtime, port, local(SAIGON, 2026, 5, 4, 23, 0))  # 16:00 UTC: day in the shop's zone
    await shop.transition(customer, None, "awareness", zone="asia/ho_chi_minh")  # the trait, case forgiven
    await shop.deliver()
    welcome = (await shop.log(customer))["welcome"]
    assert welcome["timezone"] == "asia/ho_chi_minh"
    assert (welcome["status"], welcome["attempts"]) == ("queued", 0)  # held, and no attempt spent
    assert welcome["next_attempt_at"] == local(SAIGON, 2026, 5, 5, 8, 0)  # 01:00 UTC
    assert received(sink, customer) == []

    shop.clock.now = local(SAIGON, 2026, 5, 5, 7, 59)
    await shop.deliver()
    assert received(sink, customer) == []  # still quiet
    shop.clock.now = local(SAIGON, 2026, 5, 5, 8, 0)
    await shop.deliver()
    welcome = (await shop.log(customer))["welcome"]
    assert (welcome["status"], welcome["attempts"]) == ("sent", 1)
    assert welcome["sent_clock_at"] == local(SAIGON, 2026, 5, 5, 8, 0)
    assert received(sink, customer) == ["welcome"]


async def test_the_second_marketing_message_of_a_local_day_is_deferred_to_the_next_and_then_sent(
        runtime, mail_sink):
    sink, port = mail_sink
    customer = f"capped-{uuid.uuid4().hex[:8]}"
    shop = shop_at(runtime, port, local(SAIGON, 2026, 5, 11, 9, 0))
    await shop.transition(customer, None, "awareness", zone=SAIGON)
    await shop.deliver()
    assert received(sink, customer) == ["welcome"]

    shop.clock.now = local(SAIGON, 2026, 5, 11, 18, 0)  # same local day: the day's one is spent
    await shop.transition(customer, "awareness", "consideration", zone=SAIGON)
    await shop.deliver()
    nudge = (await shop.log(customer))["consideration_nudge"]
    # Deferred to the next local day - whose start is in quiet hours: its first opening, 08:00.
    assert (nudge["status"], nudge["attempts"]) == ("queued", 0)
    assert nudge["next_attempt_at"] == local(SAIGON, 2026, 5, 12, 8, 0)
    assert received(sink, customer) == ["welcome"]

    shop.clock.now = local(SAIGON, 2026, 5, 12, 8, 0)
    await shop.deliver()
    assert received(sink, customer) == ["welcome", "consideration_nudge"]
    assert (await shop.log(customer))["consideration_nudge"]["status"] == "sent"


async def test_a_transactional_message_goes_at_night_and_beyond_the_caps(runtime, mail_sink):
    sink, port = mail_sink
    customer = f"buyer-{uuid.uuid4().hex[:8]}"
    shop = shop_at(runtime, port, local(SAIGON, 2026, 5, 18, 20, 0))
    await shop.transition(customer, None, "awareness", zone=SAIGON)
    await shop.deliver()
    assert received(sink, customer) == ["welcome"]  # the day's marketing message

    shop.clock.now = local(SAIGON, 2026, 5, 18, 23, 30)  # quiet hours, the day's cap spent
    await shop.transition(customer, "awareness", "purchase", zone=SAIGON)
    await shop.deliver()
    assert received(sink, customer) == ["welcome", "thank_you_feedback"]
    assert (await shop.log(customer))["thank_you_feedback"]["sent_clock_at"] == shop.clock.now


async def test_a_held_out_person_gets_nothing_and_is_recorded_holdout(runtime, mail_sink):
    sink, port = mail_sink
    run = uuid.uuid4().hex[:8]
    # Whom the hash holds out of the welcome campaign at 10%, and whom not.
    held = next(f"held-{run}-{n}" for n in range(1000) if held_out("welcome", f"held-{run}-{n}", 0.10))
    treated = next(f"treated-{run}-{n}" for n in range(1000) if not held_out("welcome", f"treated-{run}-{n}", 0.10))
    shop = shop_at(runtime, port, local(SAIGON, 2026, 5, 25, 10, 0), holdout_share=0.10)
    before = suppressed_count("holdout")
    for customer in (held, treated):
        await shop.transition(customer, None, "awareness", zone=SAIGON)
    await shop.deliver()

    welcome = (await shop.log(held))["welcome"]
    assert (welcome["status"], welcome["suppressed_reason"]) == ("suppressed", "holdout")
    assert received(sink, held) == []
    assert received(sink, treated) == ["welcome"]
    assert suppressed_count("holdout") - before == 1
    async with runtime.engine.connect() as conn:
        recorded = (await conn.execute(select(holdout_assignments).where(
            holdout_assignments.c.person.in_([held, treated])))).mappings().all()
    assert {(r["campaign"], r["person"], r["group"]) for r in recorded} == {
        ("welcome", held, "holdout"), ("welcome", treated, "treatment")}
    assert {r["assigned_at"] for r in recorded} == {shop.clock.now}


async def test_a_recorded_assignment_stands_when_the_share_changes(runtime, mail_sink):
    """Append-only: the first assignment is the person's group from then on, whatever the share says later."""
    sink, port = mail_sink
    run = uuid.uuid4().hex[:8]
    customer = next(f"kept-{run}-{n}" for n in range(1000) if not held_out("welcome", f"kept-{run}-{n}", 0.10))
    shop = shop_at(runtime, port, local(SAIGON, 2026, 6, 1, 10, 0), holdout_share=0.10)
    await shop.transition(customer, None, "awareness", zone=SAIGON)
    await shop.deliver()
    async with runtime.engine.begin() as conn:  # assigned to the nudge's holdout once already (recorded)
        await conn.execute(holdout_assignments.insert().values(
            campaign="consideration_nudge", person=customer, group="holdout", assigned_at=shop.clock.now))
    shop.settings = shop.settings.model_copy(update={"holdout_share": 0.0})
    shop.clock.now = local(SAIGON, 2026, 6, 2, 10, 0)
    await shop.transition(customer, "awareness", "consideration", zone=SAIGON)
    await shop.deliver()
    nudge = (await shop.log(customer))["consideration_nudge"]
    assert (nudge["status"], nudge["suppressed_reason"]) == ("suppressed", "holdout")
    assert received(sink, customer) == ["welcome"]


async def test_a_message_held_through_the_night_is_not_stale_for_the_wait_the_gateway_imposed(runtime, mail_sink):
    sink, port = mail_sink
    waited, late = f"waited-{uuid.uuid4().hex[:8]}", f"late-{uuid.uuid4().hex[:8]}"
    # A freshness window of an hour: the night's nine hours would make any message stale.
    shop = shop_at(runtime, port, local(SAIGON, 2026, 6, 8, 22, 59), freshness=timedelta(hours=1))
    for customer in (waited, late):
        await shop.transition(customer, None, "awareness", zone=SAIGON)
    shop.clock.now = local(SAIGON, 2026, 6, 8, 23, 0)
    await shop.deliver()
    assert {(await shop.log(c))["welcome"]["status"] for c in (waited, late)} == {"queued"}

    # At the opening, `waited` has aged a minute of its own: sent.
    shop.clock.now = local(SAIGON, 2026, 6, 9, 8, 0)
    async with runtime.engine.begin() as conn:  # `late` is not claimed then (the worker behind, say)
        await conn.execute(messages.update().where(messages.c.customer_id == late)
                           .values(next_attempt_at=datetime(2100, 1, 1, tzinfo=UTC)))
    await shop.deliver()
    assert received(sink, waited) == ["welcome"]
    # Two hours after the opening, `late` has aged beyond the window by its own wait: stale.
    shop.clock.now = local(SAIGON, 2026, 6, 9, 10, 0)
    async with runtime.engine.begin() as conn:
        await conn.execute(messages.update().where(messages.c.customer_id == late)
                           .values(next_attempt_at=datetime(2026, 6, 9, tzinfo=UTC)))
    await shop.deliver()
    welcome = (await shop.log(late))["welcome"]
    assert (welcome["status"], welcome["suppressed_reason"]) == ("suppressed", "stale")
    assert received(sink, late) == []


async def test_new_york_on_its_fall_back_day(runtime, mail_sink):
    """2026-11-01: New York's clocks go back at 02:00 EDT; 08:00 that morning is EST (13:00 UTC, not 12:00)."""
    sink, port = mail_sink
    customer = f"ny-{uuid.uuid4().hex[:8]}"
    shop = shop_at(runtime, port, local(NEW_YORK, 2026, 10, 31, 22, 0))  # EDT, 02:00 UTC on the 1st
    await shop.transition(customer, None, "awareness", zone=NEW_YORK)
    await shop.deliver()
    welcome = (await shop.log(customer))["welcome"]
    assert welcome["next_attempt_at"] == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    shop.clock.now = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)  # 07:30 EST (08:30 had the clocks not gone back)
    await shop.deliver()
    assert received(sink, customer) == []
    shop.clock.now = datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    await shop.deliver()
    assert received(sink, customer) == ["welcome"]

    # Later that (25-hour) day, a second marketing message waits for the next local day's 08:00 EST.
    shop.clock.now = datetime(2026, 11, 2, 1, 30, tzinfo=UTC)  # 20:30 EST on the 1st
    await shop.transition(customer, "awareness", "consideration", zone=NEW_YORK)
    await shop.deliver()
    nudge = (await shop.log(customer))["consideration_nudge"]
    assert (nudge["status"], nudge["next_attempt_at"]) == ("queued", datetime(2026, 11, 2, 13, 0, tzinfo=UTC))
    shop.clock.now = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)
    await shop.deliver()
    assert received(sink, customer) == ["welcome", "consideration_nudge"]


async def test_a_merge_hands_the_absorbed_keys_assignments_to_the_survivor_whose_own_stand(runtime):
    run = uuid.uuid4().hex[:8]
    guest, user = f"guest-{run}", f"user-{run}"
    at = datetime(2026, 6, 15, tzinfo=UTC)
    async with runtime.engine.begin() as conn:
        await conn.execute(holdout_assignments.insert(), [
            {"campaign": "welcome", "person": guest, "group": "holdout", "assigned_at": at},
            {"campaign": "consideration_nudge", "person": guest, "group": "holdout", "assigned_at": at},
            {"campaign": "consideration_nudge", "person": user, "group": "treatment", "assigned_at": at}])
    merge = IdentityMergedData(survivor_id=user, absorbed_id=guest, absorbed_ids=[guest], user_id=user,
                               reason="identify", cause_event_ids=["c"], event_time=at, processed_at=at)
    event = CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=at,
                       subject=user, data=merge.model_dump(mode="json"))
    runner = ConsumerRunner(name="messaging-test", consumer=None, producer=None, engine=runtime.engine,
                            route=routes(brand="Shop", freshness=Freshness(clock=Clock(at), window=timedelta(days=1))))
    await runner.process([record("topic", 1, event.to_bytes(), key=user.encode())])
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(holdout_assignments).where(
            holdout_assignments.c.person.in_([guest, user])))).mappings().all()
    assert {(r["campaign"], r["person"], r["group"]) for r in rows} == {
        ("welcome", guest, "holdout"), ("consideration_nudge", guest, "holdout"),  # append-only: they stay
        ("welcome", user, "holdout"),  # the survivor had none: the guest's is theirs now
        ("consideration_nudge", user, "treatment")}  # the survivor's own stands


async def test_quiet_hours_follow_the_customer_s_zone_else_the_shop_s(runtime, mail_sink):
    """At 03:00 UTC it is 10:00 in Bangkok and 23:00 the evening before in the New York shop: the customer
    in Bangkok gets their welcome, the one without a (usable) zone waits for the shop's morning."""
    sink, port = mail_sink
    run = uuid.uuid4().hex[:8]
    bangkok, unzoned, bogus = f"bkk-{run}", f"nozone-{run}", f"bogus-{run}"
    shop = shop_at(runtime, port, datetime(2026, 6, 22, 3, 0, tzinfo=UTC), shop_timezone="America/New_York")
    await shop.transition(bangkok, None, "awareness", zone="Asia/Bangkok")
    await shop.transition(unzoned, None, "awareness", zone=None)
    await shop.transition(bogus, None, "awareness", zone="+07:00")  # no zone name: the shop's
    await shop.deliver()
    assert received(sink, bangkok) == ["welcome"]
    for customer in (unzoned, bogus):
        welcome = (await shop.log(customer))["welcome"]
        assert (welcome["status"], welcome["next_attempt_at"]) == ("queued", datetime(2026, 6, 22, 12, 0, tzinfo=UTC))
        assert received(sink, customer) == []


async def test_a_guests_message_held_through_the_night_goes_out_once_after_a_merge_to_the_survivors_address(
        runtime, mail_sink):
    """A guest's welcome is held by quiet hours in Saigon; the guest then signs in (merged into a user whose
    address is known) and the merge is delivered twice. At 08:00 local exactly one welcome goes out, to the
    user's address; the guest's old address gets nothing, and a later round sends nothing more."""
    sink, port = mail_sink
    run = uuid.uuid4().hex[:8]
    guest, user = f"guest-{run}", f"user-{run}"
    shop = shop_at(runtime, port, local(SAIGON, 2026, 5, 4, 23, 0))
    at = shop.clock.now
    welcome = StageChangedData(customer_id=guest, user_id=None, anonymous_ids=[guest], from_stage=None,
                               to_stage="awareness", reason="r", rule_version="v", cause_event_ids=["c"],
                               event_time=at, processed_at=at,
                               traits={"email": f"{guest}@example.com", "timezone": SAIGON.key})
    events = [CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=at,
                         subject=guest, data=welcome.model_dump(mode="json"))]
    runner = ConsumerRunner(name="messaging-test", consumer=None, producer=None, engine=runtime.engine,
                            route=routes(brand="Shop", freshness=shop.freshness))
    await runner.process([record("topic", 99, events[0].to_bytes(), key=guest.encode())])
    await shop.deliver()
    assert (await shop.log(guest))["welcome"]["status"] == "queued"  # held until 08:00
    identify = TouchpointData(type="identify", userId=user, messageId=f"id-{run}", timestamp=at, receivedAt=at,
                              traits={"email": f"{user}@example.com"})
    merge = IdentityMergedData(survivor_id=user, absorbed_id=guest, absorbed_ids=[guest], user_id=user,
                               reason="identify", cause_event_ids=["c"], event_time=at, processed_at=at)
    events = [CloudEvent(id=f"/sources/web/id-{run}", source="/sources/web", type="touchpoint.identify", time=at,
                         subject=user, data=identify.model_dump(mode="json")),
              CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=at,
                         subject=user, data=merge.model_dump(mode="json"))]
    records = [record("topic", 100 + n, event.to_bytes(), key=user.encode()) for n, event in enumerate(events)]
    await runner.process(records)
    await runner.process(records[1:])  # the merge redelivered
    await shop.deliver()
    assert received(sink, user) == [] and received(sink, guest) == []  # still night

    shop.clock.now = local(SAIGON, 2026, 5, 5, 8, 0)
    await shop.deliver()
    shop.clock.now = local(SAIGON, 2026, 5, 5, 9, 0)
    await shop.deliver()
    assert received(sink, user) == ["welcome"]
    assert received(sink, guest) == []
    welcome = (await shop.log(user))["welcome"]
    assert (welcome["status"], welcome["recipient"]) == ("sent", f"{user}@example.com")
