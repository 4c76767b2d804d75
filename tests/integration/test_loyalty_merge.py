"""Loyalty follows identity merges: a guest's points, orders and stage bonus go to the account the guest
became, whatever the order the merge, the orders, the refunds and the stage changes arrive in, and however
they are batched. Real PostgreSQL, the real runner and handlers; in-order delivery is the oracle."""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifecycle_devstack.services import BY_NAME
from lifecycle_loyalty.db import ledger
from lifecycle_loyalty.handlers import routes
from lifecycle_loyalty.main import create_app
from lifecycle_loyalty.settings import LoyaltySettings
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

from tests.support.in_process import kafka_settings, running
from tests.support.kafka_records import record

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BONUS = 500
TOKEN = "loyalty-merge-test-token-5d1e8a3c90b7"


@dataclass(frozen=True)
class Cast:
    """One person's ids: a guest (anonymousId), another guest id of theirs, the account they sign up with."""

    guest: str
    other_guest: str
    user: str

    @classmethod
    def new(cls) -> Cast:
        tag = uuid.uuid4().hex[:10]
        return cls(guest=f"anon-{tag}", other_guest=f"anon2-{tag}", user=f"user-{tag}")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def order(customer: str, name: str, order_id: str, *, minutes: int, amount=None) -> CloudEvent:
    """A touchpoint.order_completed / order_refunded whose subject (the Kafka key too) is `customer`."""
    time = at(minutes)
    ids = {"anonymousId": customer} if customer.startswith("anon") else {"userId": customer}
    data = TouchpointData(type="track", event=name.replace("_", " ").title(), messageId=str(uuid.uuid4()),
                          properties={"order_id": order_id, "revenue": amount}, timestamp=time, receivedAt=time,
                          **ids)
    return CloudEvent(id=str(uuid.uuid4()), source="/sources/shop", type=f"touchpoint.{name}", time=time,
                      subject=customer, data=data.model_dump(mode="json"))


def stage_changed(customer: str, *, minutes: int, to_stage: str = "loyalty") -> CloudEvent:
    data = StageChangedData(customer_id=customer, from_stage="consideration", to_stage=to_stage, reason="test",
                            rule_version="v1", cause_event_ids=["x"], event_time=at(minutes),
                            processed_at=at(minutes), verified=True)
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=at(minutes),
                      subject=customer, data=data.model_dump(mode="json"))


def merged(survivor: str, *absorbed: str, minutes: int, event_id: str | None = None) -> CloudEvent:
    """`absorbed[0]` is the absorbed profile's key; all of `absorbed` now resolve to `survivor`."""
    data = IdentityMergedData(survivor_id=survivor, absorbed_id=absorbed[0], absorbed_ids=list(absorbed),
                              user_id=survivor if survivor.startswith("user") else None, reason="identify",
                              cause_event_ids=["identify-1"], event_time=at(minutes), processed_at=at(minutes))
    return CloudEvent(id=event_id or str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE,
                      time=at(minutes), subject=survivor, data=data.model_dump(mode="json"))


def as_record(offset: int, event: CloudEvent):
    topic = "touchpoints" if event.type.startswith("touchpoint.") else "stage_transitions"
    return record(topic, offset, event.to_bytes(), key=event.subject.encode())


@pytest.fixture
async def engine(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["loyalty"]))
    yield engine
    await engine.dispose()


def runner_for(engine) -> ConsumerRunner:
    return ConsumerRunner(name="loyalty-test", consumer=None, producer=None, engine=engine, route=routes())


async def deliver(engine, events: list[CloudEvent], *, cuts: set[int] = frozenset()) -> None:
    """The events as records, in this order, in batches cut before the given positions."""
    records = [as_record(offset, event) for offset, event in enumerate(events)]
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(records)), len(records)]
    runner = runner_for(engine)
    for start, end in zip(bounds, bounds[1:], strict=False):
        await runner.process(records[start:end])


async def balances(engine, *customers: str) -> list[int]:
    async with engine.connect() as conn:
        return [(await ledger.balance(conn, customer_id=c))["balance"] for c in customers]


async def entries(engine, customer: str) -> list[tuple[str, int, str | None]]:
    async with engine.connect() as conn:
        return [(e["kind"], e["points"], e["order_id"]) for e in await ledger.entries(conn, customer_id=customer)]


@pytest.mark.parametrize("refund_by", ["user", "guest"])
async def test_a_guests_order_counts_on_their_account_and_its_refund_reverses_exactly_its_points(engine, refund_by):
    cast = Cast.new()
    await deliver(engine, [order(cast.guest, "order_completed", "o1", minutes=0, amount=80),
                           order(cast.guest, "order_completed", "o2", minutes=1, amount="12.50"),
                           merged(cast.user, cast.guest, minutes=2)])
    assert await balances(engine, cast.guest, cast.user) == [0, 92]

    await deliver(engine, [order(getattr(cast, refund_by), "order_refunded", "o1", minutes=3)])
    assert await balances(engine, cast.guest, cast.user) == [0, 12]
    assert await entries(engine, cast.guest) == [("earn", 80, "o1"), ("earn", 12, "o2"),
                                                 ("move_out", -80, "o1"), ("move_out", -12, "o2")]
    assert await entries(engine, cast.user) == [("move_in", 80, "o1"), ("move_in", 12, "o2"), ("reverse", -80, "o1")]


@pytest.mark.parametrize("refund_by", ["user", "guest"])
async def test_a_refund_known_before_the_merge_reverses_the_guests_order_on_the_account(engine, refund_by):
    cast = Cast.new()
    await deliver(engine, [order(getattr(cast, refund_by), "order_refunded", "o1", minutes=3),
                           order(cast.guest, "order_completed", "o1", minutes=0, amount=80),
                           merged(cast.user, cast.guest, minutes=2)])
    assert await balances(engine, cast.guest, cast.user) == [0, 0]


async def test_orders_after_the_merge_under_the_guest_id_go_to_the_account(engine):
    cast = Cast.new()
    await deliver(engine, [merged(cast.user, cast.guest, minutes=0),
                           order(cast.guest, "order_completed", "o1", minutes=1, amount=80)])
    assert await balances(engine, cast.guest, cast.user) == [0, 80]
    assert await entries(engine, cast.user) == [("earn", 80, "o1")]


@pytest.mark.parametrize("arrivals", [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)],
                         ids=lambda a: "-".join(["guest", "user", "merge"][i] for i in a))
async def test_the_loyalty_bonus_is_paid_once_across_a_merge_whichever_arrives_first(engine, arrivals):
    cast = Cast.new()
    events = [stage_changed(cast.guest, minutes=0), stage_changed(cast.user, minutes=1),
              merged(cast.user, cast.guest, minutes=2)]
    await deliver(engine, [events[i] for i in arrivals])
    assert await balances(engine, cast.guest, cast.user) == [0, BONUS]
    await deliver(engine, [stage_changed(cast.guest, minutes=3), stage_changed(cast.user, minutes=4)])  # re-entered
    assert await balances(engine, cast.guest, cast.user) == [0, BONUS]


async def test_ids_merged_into_a_guest_follow_it_when_the_guest_signs_up(engine):
    cast = Cast.new()
    await deliver(engine, [order(cast.guest, "order_completed", "o1", minutes=0, amount=80),
                           merged(cast.other_guest, cast.guest, minutes=1),
                           merged(cast.user, cast.other_guest, minutes=2),  # names only the key it absorbs
                           order(cast.guest, "order_refunded", "o1", minutes=3),
                           order(cast.guest, "order_completed", "o2", minutes=4, amount=7)])
    assert await balances(engine, cast.guest, cast.other_guest, cast.user) == [0, 0, 7]


async def test_a_merge_delivered_again_changes_nothing(engine):
    cast = Cast.new()
    merge = merged(cast.user, cast.guest, minutes=2)
    await deliver(engine, [order(cast.guest, "order_completed", "o1", minutes=0, amount=80),
                           stage_changed(cast.guest, minutes=1), stage_changed(cast.user, minutes=1), merge])
    before = [await entries(engine, c) for c in (cast.guest, cast.user)]
    assert await balances(engine, cast.guest, cast.user) == [0, 80 + BONUS]

    await deliver(engine, [merge, merge])  # redelivered (the inbox drops it)...
    await deliver(engine, [merged(cast.user, cast.guest, minutes=2)])  # ...and sent again under another id
    assert [await entries(engine, c) for c in (cast.guest, cast.user)] == before


async def apply_open(conn, event: CloudEvent) -> None:
    """Apply an event in a transaction the test holds open (no inbox: the handler alone)."""
    found = routes()(event.type)
    await found.handler(conn, [found.typed(event)])


async def test_a_merge_waits_for_a_guest_order_being_applied_then_moves_it(engine):
    cast = Cast.new()
    async with engine.begin() as conn:
        await apply_open(conn, order(cast.guest, "order_completed", "o1", minutes=0, amount=80))
        merging = asyncio.create_task(deliver(engine, [merged(cast.user, cast.guest, minutes=1)]))
        await asyncio.sleep(0.5)
        assert not merging.done()  # it would otherwise move what the guest held without this order
    await merging
    assert await balances(engine, cast.guest, cast.user) == [0, 80]


async def test_a_guest_order_waits_for_a_merge_being_applied_then_goes_to_the_account(engine):
    cast = Cast.new()
    async with engine.begin() as conn:
        await apply_open(conn, merged(cast.user, cast.guest, minutes=0))
        ordering = asyncio.create_task(deliver(engine, [order(cast.guest, "order_completed", "o1", minutes=1,
                                                              amount=80)]))
        await asyncio.sleep(0.5)
        assert not ordering.done()
    await ordering
    assert await entries(engine, cast.guest) == []
    assert await balances(engine, cast.user) == [80]


async def test_a_stage_bonus_being_paid_to_the_account_during_a_merge_is_not_paid_twice(engine):
    cast = Cast.new()
    await deliver(engine, [stage_changed(cast.guest, minutes=0)])
    async with engine.begin() as conn:
        await apply_open(conn, stage_changed(cast.user, minutes=1))
        merging = asyncio.create_task(deliver(engine, [merged(cast.user, cast.guest, minutes=2)]))
        await asyncio.sleep(0.5)
        assert not merging.done()
    await merging
    assert await balances(engine, cast.guest, cast.user) == [0, BONUS]


async def test_the_read_api_answers_an_absorbed_id_with_the_account_it_was_merged_into(namespace, engine):
    cast = Cast.new()
    await deliver(engine, [order(cast.guest, "order_completed", "o1", minutes=0, amount=80),
                           merged(cast.user, cast.guest, minutes=1)])
    app_settings = LoyaltySettings(environment="production", database_url=namespace.database_url(BY_NAME["loyalty"]),
                                   kafka=kafka_settings(namespace), api_tokens=TOKEN)
    async with running(create_app(app_settings)) as client:
        headers = {"authorization": f"Bearer {TOKEN}"}
        balance = (await client.get(f"/v1/customers/{cast.guest}/balance", headers=headers)).json()
        ledger_rows = (await client.get(f"/v1/customers/{cast.guest}/ledger", headers=headers)).json()
    assert (balance["customer_id"], balance["balance"]) == (cast.user, 80)
    assert [(row["kind"], row["points"]) for row in ledger_rows] == [("move_in", 80)]


def story(cast: Cast, *, chain: bool, refund_by: str, amounts: tuple[int, int, int, int]) -> list[CloudEvent]:
    """A guest orders twice and reaches loyalty; (with `chain`) their profile is first merged into another
    guest profile, which ordered too; they sign up, reach loyalty again, order once more, and one of the
    guest's orders is refunded (keyed by `refund_by`). In the order it happened."""
    guest_orders = [order(cast.guest, "order_completed", "o1", minutes=0, amount=amounts[0]),
                    order(cast.guest, "order_completed", "o2", minutes=1, amount=amounts[1]),
                    stage_changed(cast.guest, minutes=2)]
    if chain:
        merges = [order(cast.other_guest, "order_completed", "o3", minutes=3, amount=amounts[2]),
                  stage_changed(cast.other_guest, minutes=3),
                  merged(cast.other_guest, cast.guest, minutes=4),
                  merged(cast.user, cast.other_guest, cast.guest, minutes=5)]
    else:
        merges = [merged(cast.user, cast.guest, minutes=5)]
    return [*guest_orders, *merges, stage_changed(cast.user, minutes=6),
            order(cast.user, "order_completed", "o4", minutes=7, amount=amounts[3]),
            order(getattr(cast, refund_by), "order_refunded", "o1", minutes=8)]


def expected_balances(*, chain: bool, amounts: tuple[int, int, int, int]) -> list[int]:
    """guest, other guest, user: everything ends on the account; o1 refunded; one bonus."""
    kept = [amounts[1], *([amounts[2]] if chain else []), amounts[3]]
    return [0, 0, sum(math.floor(a) for a in kept) + BONUS]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(chain=st.booleans(), refund_by=st.sampled_from(["guest", "other_guest", "user"]),
       amounts=st.tuples(*[st.sampled_from([0, 9.99, 80, 3_000_000_000])] * 4),
       order_of=st.randoms(use_true_random=False), cuts=st.sets(st.integers(min_value=1, max_value=11)))
async def test_balances_do_not_depend_on_the_delivery_order_of_the_merge(engine, chain, refund_by, amounts, order_of,
                                                                        cuts):
    if refund_by == "other_guest" and not chain:
        refund_by = "guest"
    in_order, shuffled = Cast.new(), Cast.new()
    await deliver(engine, story(in_order, chain=chain, refund_by=refund_by, amounts=amounts))
    events = story(shuffled, chain=chain, refund_by=refund_by, amounts=amounts)
    order_of.shuffle(events)
    await deliver(engine, events, cuts=cuts)

    expected = expected_balances(chain=chain, amounts=amounts)
    assert await balances(engine, in_order.guest, in_order.other_guest, in_order.user) == expected
    assert await balances(engine, shuffled.guest, shuffled.other_guest, shuffled.user) == expected
