"""Messaging follows identity merges, never messages anyone about the past, and has words for
drifting and returning customers. Real PostgreSQL, the real runner and handlers, records as the
stage-transitions and touchpoints topics carry them."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.db.models import messages
from lifecycle_shared.db import create_engine, inbox
from lifecycle_shared.events import (
    HISTORY_CORRECTED_TYPE,
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    TYPE_HEADER,
    CloudEvent,
    HistoryCorrectedData,
    IdentityMergedData,
    StageChangedData,
    TouchpointData,
    derived_event_id,
)
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.stages import REACTIVATED
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from tests.support.kafka_records import record
from tests.support.messaging import messaging_namespace, messaging_routes

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def namespace(infra) -> StackConfig:
    """Messaging's database only: all this module drives."""
    return messaging_namespace(infra)


@pytest.fixture
async def engine(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    yield engine
    await engine.dispose()


def new_id(who: str) -> str:
    return f"{who}-{uuid.uuid4().hex[:8]}"


def make_runner(engine) -> ConsumerRunner:
    # No producer: a record that went to the dead-letter topic would fail the test.
    return ConsumerRunner(name="messaging-test", consumer=None, producer=None, engine=engine,
                          route=messaging_routes(NOW))


def stage_change(customer: str, from_stage: str | None, to_stage: str, *, user: str | None = None,
                 anonymous: tuple[str, ...] = (), reason: str = "r", historical: bool = False,
                 email: str | None = None, event_id: str | None = None, at: datetime = NOW) -> CloudEvent:
    data = StageChangedData(customer_id=customer, user_id=user, anonymous_ids=list(anonymous), from_stage=from_stage,
                            to_stage=to_stage, reason=reason, rule_version="v", cause_event_ids=["c"], event_time=at,
                            processed_at=at, traits={"email": email} if email else {}, historical=historical)
    return CloudEvent(id=event_id or str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=NOW,
                      subject=customer, data=data.model_dump(mode="json"))


def merged(absorbed: str, survivor: str, *, user: str | None, event_id: str | None = None) -> CloudEvent:
    data = IdentityMergedData(survivor_id=survivor, absorbed_id=absorbed, absorbed_ids=[absorbed], user_id=user,
                              reason="identify" if user else "alias", cause_event_ids=["c"], event_time=NOW,
                              processed_at=NOW)
    return CloudEvent(id=event_id or str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=NOW,
                      subject=survivor, data=data.model_dump(mode="json"))


def identify(user: str | None, email: str | None, *, visitor: str | None = None) -> CloudEvent:
    data = TouchpointData(type="identify", anonymousId=visitor, userId=user, messageId="m",
                          traits={"email": email} if email else {}, timestamp=NOW, receivedAt=NOW)
    return CloudEvent(id=str(uuid.uuid4()), source="/sources/web", type="touchpoint.identify", time=NOW,
                      subject=user or visitor, data=data.model_dump(mode="json"))


async def deliver(runner: ConsumerRunner, events: list[CloudEvent], *, cuts: Collection[int] = ()) -> None:
    """The events as records, in this order, in one polled batch or cut into several."""
    records = [record("topic", offset, event.to_bytes(), key=event.subject.encode())
               for offset, event in enumerate(events)]
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(records)), len(records)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        await runner.process(records[start:end])


async def log_of(engine, customer: str) -> list[tuple]:
    """The customer's message log as the read API serves it, without the times and order of arrival."""
    async with engine.connect() as conn:
        found = await repo.messages_for(conn, customer_id=customer)
    return sorted((m["id"], m["customer_id"], m["user_id"], tuple(sorted(m["linked_ids"])), m["template"],
                   m["status"], m["recipient"]) for m in found)


def welcome_of(change: CloudEvent) -> str:
    return derived_event_id(change.subject, "welcome", change.id)


@pytest.mark.parametrize("survivor_address", ["known-before-the-merge", "given-after-the-merge"])
async def test_a_guests_waiting_welcome_moves_to_the_survivor_and_goes_out_with_their_address(
        engine, survivor_address):
    guest, user = new_id("guest"), new_id("user")
    email = f"{user}@example.com"
    guest_welcome = stage_change(guest, None, "awareness")
    address = identify(user, email)  # the survivor's own address: no anonymous id comes with it
    arrivals = [guest_welcome, merged(guest, user, user=user)]
    arrivals.insert(0 if survivor_address == "known-before-the-merge" else 2, address)
    runner = make_runner(engine)
    await deliver(runner, arrivals[:-1])
    if survivor_address == "given-after-the-merge":  # moved, and still waiting
        assert [m[5] for m in await log_of(engine, user)] == ["awaiting_contact"]
    await deliver(runner, arrivals[-1:])
    expected = [(welcome_of(guest_welcome), user, user, tuple(sorted([guest, user])), "welcome", "queued", email)]
    assert await log_of(engine, user) == expected
    assert await log_of(engine, guest) == expected  # the guest's id still finds it


async def test_a_transition_of_a_merged_guest_arriving_late_goes_to_the_survivor(engine):
    guest, user = new_id("guest"), new_id("user")
    late = stage_change(guest, None, "awareness")
    await deliver(make_runner(engine), [merged(guest, user, user=user), identify(user, f"{user}@example.com"), late])
    assert await log_of(engine, user) == [(welcome_of(late), user, user, tuple(sorted([guest, user])), "welcome",
                                           "queued", f"{user}@example.com")]


async def test_a_historical_transition_queues_nothing_and_an_equal_live_one_queues_one(engine):
    customer = new_id("user")
    email = f"{customer}@example.com"

    def counted() -> float:
        return REGISTRY.get_sample_value("lifecycle_messaging_transitions_unmessaged_total",
                                         {"reason": "historical"}) or 0.0

    before = counted()
    runner = make_runner(engine)
    await deliver(runner, [stage_change(customer, None, "awareness", user=customer, email=email, historical=True),
                           stage_change(customer, "awareness", "purchase", user=customer, email=email,
                                        historical=True)])
    assert await log_of(engine, customer) == []  # no row at all: counted, not recorded
    assert counted() == before + 2
    live = stage_change(customer, "awareness", "purchase", user=customer, email=email)
    await deliver(runner, [live])
    assert sorted(m[4:] for m in await log_of(engine, customer)) == [("feedback_request", "queued", email),
                                                                     ("thank_you_feedback", "queued", email)]
    assert counted() == before + 2


@pytest.mark.parametrize(("from_stage", "to_stage", "reason", "template"), [
    ("retention", "at_risk", "no_order_for_a_while", "come_back_offer"),
    ("at_risk", "lapsed", "no_order_for_long", "we_miss_you"),
    ("at_risk", "purchase", REACTIVATED, "welcome_back"),
    ("lapsed", "purchase", REACTIVATED, "welcome_back"),
])
async def test_drifting_and_returning_customers_get_their_own_messages(engine, from_stage, to_stage, reason,
                                                                       template):
    customer = new_id("user")
    await deliver(make_runner(engine), [stage_change(customer, from_stage, to_stage, user=customer, reason=reason,
                                                     email=f"{customer}@example.com")])
    async with engine.connect() as conn:
        found = await repo.messages_for(conn, customer_id=customer)
    assert [(m["template"], m["status"]) for m in found] == [(template, "queued")]
    assert "first order" not in found[0]["body"]


async def test_a_redelivered_or_replayed_merge_changes_nothing(engine):
    guest, user = new_id("guest"), new_id("user")
    merge = merged(guest, user, user=user)
    runner = make_runner(engine)
    await deliver(runner, [stage_change(guest, None, "awareness"), stage_change(guest, "awareness", "consideration"),
                           identify(user, f"{user}@example.com", visitor=guest), merge])

    async def state() -> tuple[list, list, list]:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(messages).where(messages.c.linked_ids.overlap([guest, user]))
                                       .order_by(messages.c.seq))).all()
            aliased = (await conn.execute(text("SELECT * FROM aliases WHERE survivor_id = :u"), {"u": user})).all()
            known = (await conn.execute(text("SELECT * FROM contacts WHERE customer_id IN (:g, :u) ORDER BY 1"),
                                        {"u": user, "g": guest})).all()
        return list(rows), list(aliased), list(known)

    applied = await state()
    assert [(m.customer_id, m.template, m.status) for m in applied[0]] == [  # the welcome overtaken by the nudge
        (user, "welcome", "suppressed"), (user, "consideration_nudge", "queued")]
    assert (len(applied[1]), len(applied[2])) == (1, 2)
    await deliver(runner, [merge])  # redelivered: the same record
    assert await state() == applied
    await deliver(runner, [merged(guest, user, user=user)])  # replayed under another id: applied again, no change
    assert await state() == applied


@pytest.mark.parametrize("type_header", [True, False], ids=["with-type-header", "decoded"])
async def test_a_history_correction_is_skipped_not_dead_lettered(engine, type_header):
    customer = new_id("user")
    assert messaging_routes(NOW)(HISTORY_CORRECTED_TYPE) is None
    data = HistoryCorrectedData(customer_id=customer, stage="purchase", superseded=["t1"], added=[], processed_at=NOW)
    event = CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=HISTORY_CORRECTED_TYPE, time=NOW,
                       subject=customer, data=data.model_dump(mode="json"))
    correction = record("topic", 0, event.to_bytes(), key=customer.encode())
    if type_header:
        correction.headers = [(TYPE_HEADER, HISTORY_CORRECTED_TYPE.encode())]
    await make_runner(engine).process([correction])  # no producer: a dead letter would raise
    async with engine.connect() as conn:
        recorded = (await conn.execute(select(inbox.c.event_id).where(inbox.c.event_id == event.id))).all()
    assert recorded == [] and await log_of(engine, customer) == []


async def test_a_merge_never_hands_one_known_users_messages_to_another(engine):
    """A shared device: its anonymous welcome is Ann's (her transitions claim the device); a merge
    of the device into Bob moves none of it, and Bob's address releases none of it."""
    device, ann, bob = new_id("device"), new_id("ann"), new_id("bob")
    device_welcome = stage_change(device, None, "awareness")
    await deliver(make_runner(engine), [
        device_welcome, stage_change(ann, "awareness", "consideration", user=ann, anonymous=(device,)),
        merged(device, bob, user=bob), identify(bob, f"{bob}@example.com", visitor=device),
        stage_change(device, "consideration", "purchase")])  # late, still the device's: not Bob's either
    assert await log_of(engine, bob) == []
    assert sorted((m[1:] for m in await log_of(engine, device)), key=repr) == sorted([
        (device, None, (device,), "welcome", "suppressed", None),  # overtaken by the device's later move
        (ann, ann, tuple(sorted([ann, device])), "consideration_nudge", "awaiting_contact", None),
        (device, None, (device,), "thank_you_feedback", "awaiting_contact", None),
        (device, None, (device,), "feedback_request", "awaiting_contact", None)], key=repr)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(order=st.permutations(range(3)), cuts=st.sets(st.integers(min_value=1, max_value=2)),
       already_welcomed=st.booleans())
async def test_the_messages_are_the_same_whatever_the_order_of_change_merge_and_identify(
        namespace, order, cuts, already_welcomed):
    """A guest's welcome, the guest's merge into the user and the user's identify with an address,
    in any order and batching: one welcome for the user - or, if the user was already welcomed
    with their own, the guest's is kept as superseded and never sent."""
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    guest, user = new_id("guest"), new_id("user")
    email = f"{user}@example.com"
    guest_welcome = stage_change(guest, None, "awareness")
    three = [guest_welcome, merged(guest, user, user=user), identify(user, email, visitor=guest)]
    # The user's own first visit comes after the guest's (a guest signs up later).
    own_welcome = stage_change(user, None, "awareness", user=user, email=email, at=NOW + timedelta(minutes=5))
    guest_message = (welcome_of(guest_welcome), user, user, tuple(sorted([guest, user])), "welcome")
    expected = [(*guest_message, "queued", email)]
    if already_welcomed:
        expected = sorted([(*guest_message, "superseded", None),
                           (welcome_of(own_welcome), user, user, (user,), "welcome", "queued", email)])
    try:
        await deliver(make_runner(engine), [own_welcome] if already_welcomed else [])
        await deliver(make_runner(engine), [three[i] for i in order], cuts=cuts)
        assert await log_of(engine, user) == expected
    finally:
        await engine.dispose()
