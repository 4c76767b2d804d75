"""The points ledger agrees with the stage engine's view of a customer's orders whatever order the
orders, re-sent orders and refunds arrive in, and however they are batched. Real PostgreSQL, the
real runner and handlers; the stage engine's own fold is the oracle."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifecycle_devstack.services import BY_NAME
from lifecycle_loyalty.db import ledger
from lifecycle_loyalty.handlers import routes
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import CloudEvent, TouchpointData
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_stage_engine.domain.stages import Touch, fold_history

from tests.support.kafka_records import record

T0 = datetime(2026, 3, 1, tzinfo=UTC)

ORDER_EVENT = st.tuples(
    st.sampled_from(["order_completed", "order_refunded"]),
    st.sampled_from(["o1", "o2", "o3"]),
    st.integers(min_value=0, max_value=50),  # minutes after T0
    st.sampled_from([0, 9.99, 80, 3_000_000_000, "12.50"]),  # amounts, past int32 included
)


def order_event(customer: str, name: str, order_id: str, minutes: int, amount) -> CloudEvent:
    time = T0 + timedelta(minutes=minutes)
    # Refunds here refund the whole order, as the stage engine counts them (partial refunds: test_loyalty_refunds).
    revenue = amount if name == "order_completed" else None
    data = TouchpointData(type="track", event=name.replace("_", " ").title(), userId=customer, messageId="m",
                          properties={"order_id": order_id, "revenue": revenue}, timestamp=time, receivedAt=time)
    return CloudEvent(id=str(uuid.uuid4()), source="/sources/shop", type=f"touchpoint.{name}", time=time,
                      subject=customer, data=data.model_dump(mode="json"))


def stage_engine_points(events: list[CloudEvent]) -> int:
    facts = fold_history([Touch(event_id=e.id, name=e.type.removeprefix("touchpoint."), time=e.time,
                                properties=e.data["properties"]) for e in events])
    return sum(math.floor(order.amount) for order in facts.orders)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=st.lists(ORDER_EVENT, min_size=1, max_size=7), order=st.randoms(use_true_random=False),
       cuts=st.sets(st.integers(min_value=1, max_value=6)))
async def test_the_ledger_matches_the_stage_engine_whatever_the_delivery_order(namespace, history, order, cuts):
    engine = create_engine(namespace.database_url(BY_NAME["loyalty"]))
    runner = ConsumerRunner(name="loyalty-test", consumer=None, producer=None, engine=engine, route=routes())
    customer = f"c-{uuid.uuid4().hex[:10]}"
    events = [order_event(customer, *fields) for fields in history]
    delivered = list(events)
    order.shuffle(delivered)
    records = [record("touchpoints", offset, event.to_bytes(), key=customer.encode())
               for offset, event in enumerate(delivered)]
    bounds = [0, *sorted(c for c in cuts if c < len(records)), len(records)]
    try:
        for start, end in zip(bounds, bounds[1:], strict=False):
            await runner.process(records[start:end])
        async with engine.connect() as conn:
            balance = await ledger.balance(conn, customer_id=customer)
        assert balance["balance"] == stage_engine_points(events)
        assert balance["balance"] >= 0
    finally:
        await engine.dispose()


async def test_a_refund_before_its_order_and_an_order_resent_after_its_refund_earn_nothing(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["loyalty"]))
    runner = ConsumerRunner(name="loyalty-test", consumer=None, producer=None, engine=engine, route=routes())
    customer = f"c-{uuid.uuid4().hex[:10]}"
    arrivals = [order_event(customer, "order_refunded", "o1", 5, None),     # the refund overtakes...
                order_event(customer, "order_completed", "o1", 0, 80),      # ...its order
                order_event(customer, "order_completed", "o2", 10, 30),
                order_event(customer, "order_refunded", "o2", 20, None),
                order_event(customer, "order_completed", "o2", 30, 30)]     # re-sent after its refund
    try:
        for offset, event in enumerate(arrivals):
            await runner.process([record("touchpoints", offset, event.to_bytes(), key=customer.encode())])
        async with engine.connect() as conn:
            assert (await ledger.balance(conn, customer_id=customer))["balance"] == 0
            kinds = [(e["kind"], e["points"]) for e in await ledger.entries(conn, customer_id=customer)]
        assert kinds == [("earn", 30), ("reverse", -30)]
    finally:
        await engine.dispose()
