"""A message waiting for an address is released once one is known, whatever the order in which
the transitions and the sign-up carrying the address arrive (two topics, no order between them) -
the message for where the customer stands; one a later transition overtook is suppressed.
Real PostgreSQL, the real runner and handlers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from unittest.mock import ANY

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db import contacts
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.db.models import messages
from lifecycle_messaging.handlers.contacts import handle_contacts
from lifecycle_messaging.handlers.stage_changed import handle_stage_changed
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import STAGE_CHANGED_TYPE, CloudEvent, StageChangedData, TouchpointData
from lifecycle_shared.kafka.registry import Typed
from lifecycle_shared.kafka.runner import ConsumerRunner
from sqlalchemy import select

from tests.support.kafka_records import record
from tests.support.messaging import freshness_at, messaging_routes, rendering

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def transition(visitor: str, from_stage: str | None, to_stage: str, *, user: str | None = None,
               traits: dict | None = None) -> CloudEvent:
    data = StageChangedData(customer_id=user or visitor, user_id=user, anonymous_ids=[visitor], from_stage=from_stage,
                            to_stage=to_stage, reason="r", rule_version="v", cause_event_ids=["c"], event_time=NOW,
                            processed_at=NOW, traits=traits or {})
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=NOW,
                      subject=user or visitor, data=data.model_dump(mode="json"))


def sign_up(visitor: str | None, user: str | None, email: str | None, *, kind: str = "signed_up",
            verified: bool = False) -> CloudEvent:
    data = TouchpointData(type="track" if kind == "signed_up" else "identify",
                          event="Signed Up" if kind == "signed_up" else None, anonymousId=visitor, userId=user,
                          messageId="m", context={"traits": {"email": email} if email else {}}, timestamp=NOW,
                          receivedAt=NOW, verified=verified)
    return CloudEvent(id=str(uuid.uuid4()), source="/sources/web", type=f"touchpoint.{kind}", time=NOW,
                      subject=user or visitor, data=data.model_dump(mode="json"))


async def statuses(engine, visitor: str) -> list[tuple[str, str, str | None]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(messages.c.template, messages.c.status, messages.c.recipient)
                                   .where(messages.c.customer_id == visitor).order_by(messages.c.seq))).all()
    return [tuple(row) for row in rows]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(signup_at=st.integers(min_value=0, max_value=2), cuts=st.sets(st.integers(min_value=1, max_value=2)))
async def test_waiting_messages_are_released_whatever_the_arrival_order(namespace, signup_at, cuts):
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    runner = ConsumerRunner(name="messaging-test", consumer=None, producer=None, engine=engine,
                            route=messaging_routes(NOW))
    visitor, user = f"v-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    email = f"{user}@example.com"
    events = [transition(visitor, None, "awareness"), transition(visitor, "awareness", "consideration")]
    events.insert(signup_at, sign_up(visitor, user, email))  # the transitions keep their own order
    records = [record("topic", offset, event.to_bytes()) for offset, event in enumerate(events)]
    bounds = [0, *sorted(cuts), len(records)]  # one polled batch, or several
    try:
        for start, end in zip(bounds, bounds[1:], strict=False):
            await runner.process(records[start:end])
        # The nudge goes out with the address; the welcome, overtaken by it before it left, never does.
        assert await statuses(engine, visitor) == [("welcome", "suppressed", ANY),
                                                   ("consideration_nudge", "queued", email)]
        async with engine.connect() as conn:
            by_visitor = await repo.messages_for(conn, customer_id=visitor)
            by_user = await repo.messages_for(conn, customer_id=user)
        assert [m["suppressed_reason"] for m in by_visitor] == ["superseded", None]
        # The customer finds the message going out under either id, and only theirs.
        assert [(m["template"], m["customer_id"], sorted(m["linked_ids"])) for m in by_user
                if m["status"] == "queued"] == [("consideration_nudge", visitor, sorted([visitor, user]))]
    finally:
        await engine.dispose()


async def test_an_address_and_a_message_written_concurrently_meet_in_the_sweep(namespace):
    """Two instances, two transactions, neither seeing the other's write: the sweep releases."""
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    visitor, user = f"v-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    try:
        async with engine.connect() as conn_a, engine.connect() as conn_b:
            tx_a, tx_b = await conn_a.begin(), await conn_b.begin()
            change, contact = transition(visitor, None, "awareness"), sign_up(visitor, user, f"{user}@example.com")
            await handle_stage_changed(conn_a, [Typed(change, StageChangedData.model_validate(change.data))],
                                       freshness=freshness_at(NOW), rendering=rendering())
            await handle_contacts(conn_b, [Typed(contact, TouchpointData.model_validate(contact.data))])
            await tx_b.commit()
            await tx_a.commit()
        assert await statuses(engine, visitor) == [("welcome", "awaiting_contact", None)]  # the race is real
        async with engine.begin() as conn:
            assert await contacts.release_for_recent(conn, within_s=600) >= 1
        assert await statuses(engine, visitor) == [("welcome", "queued", f"{user}@example.com")]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("bob_signs_in", [True, False], ids=["bob-with-a-user-id", "bob-anonymous"])
async def test_the_next_person_on_a_shared_device_gets_none_of_the_first_ones_messages(namespace, bob_signs_in):
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    runner = ConsumerRunner(name="messaging-test", consumer=None, producer=None, engine=engine,
                            route=messaging_routes(NOW))
    device, ann, bob = (f"{who}-{uuid.uuid4().hex[:8]}" for who in ("device", "ann", "bob"))
    arrivals = [transition(device, None, "awareness"),
                sign_up(device, ann, None, kind="identify"),  # Ann signs in on the device, no address yet
                transition(device, "awareness", "consideration", user=ann, traits={"firstName": "Annabelle"}),
                # then Bob, on the same device, signed in or not
                sign_up(device, bob if bob_signs_in else None, f"{bob}@example.com", kind="identify")]
    try:
        for offset, event in enumerate(arrivals):
            await runner.process([record("topic", offset, event.to_bytes())])
        async with engine.connect() as conn:
            on_device = await repo.messages_for(conn, customer_id=device)
            to_bob = (await conn.execute(select(messages.c.id)
                                         .where(messages.c.recipient == f"{bob}@example.com"))).all()
            bobs = await repo.messages_for(conn, customer_id=bob)
        assert [(m["template"], m["status"], m["recipient"]) for m in on_device] == [
            ("welcome", "awaiting_contact", None), ("consideration_nudge", "awaiting_contact", None)]
        assert to_bob == [] and bobs == []
    finally:
        await engine.dispose()


async def test_an_unverified_address_fills_an_id_without_one_but_never_replaces_one(namespace):
    """A write key's identify without identity verification may give an address where none is known; a known
    customer's address changes only on a verified one (lifecycle_shared.trust)."""
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    user, device = f"u-{uuid.uuid4().hex[:8]}", f"v-{uuid.uuid4().hex[:8]}"

    async def apply(*events: CloudEvent) -> dict[str, str]:
        async with engine.begin() as conn:
            await handle_contacts(conn, [Typed(event, TouchpointData.model_validate(event.data)) for event in events])
            return {i: c.email for i, c in (await contacts.known(conn, [user, device])).items()}

    try:
        assert await apply(sign_up(None, user, "ann@example.com", kind="identify")) == {user: "ann@example.com"}
        # Someone else's browser names the customer: the known address stays; the new device's id had none.
        assert await apply(sign_up(device, user, "mallory@example.com", kind="identify")) == {
            user: "ann@example.com", device: "mallory@example.com"}
        # Two unverified words in one batch: the first fills, the second replaces nothing.
        other = f"u-{uuid.uuid4().hex[:8]}"
        async with engine.begin() as conn:
            await handle_contacts(conn, [Typed(e, TouchpointData.model_validate(e.data)) for e in (
                sign_up(None, other, "first@example.com", kind="identify"),
                sign_up(None, other, "second@example.com", kind="identify"))])
            assert (await contacts.known(conn, [other]))[other].email == "first@example.com"
        # The signed-in customer's own, verified, change stands.
        assert (await apply(sign_up(None, user, "ann.new@example.com", kind="identify", verified=True)))[user] == (
            "ann.new@example.com")
    finally:
        await engine.dispose()
