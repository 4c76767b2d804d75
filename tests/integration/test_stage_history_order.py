"""State is a function of the customer's history in event-time order, whatever the delivery order:
shuffled, duplicated and re-batched delivery of a journey - anonymous visits, an identify that
merges them, orders, a refund, advocacy - leaves the same profile and the same stored transition
history (the one the profile API and analytics read) as in-order delivery. Real PostgreSQL, the
real runner and handlers, the sweeper with an injected clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifecycle_devstack.services import BY_NAME
from lifecycle_ingest.publisher import to_cloud_event
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.topics import Topics
from lifecycle_stage_engine.db import reads
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES
from lifecycle_stage_engine.handlers import routes
from lifecycle_stage_engine.workers.sweeper import sweep_once

from tests.support.kafka_records import record

T0 = datetime(2025, 3, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=400)  # long enough for the drift moments to come

TOUCH = st.tuples(
    st.sampled_from(["page", "Product Viewed", "Order Completed", "Order Refunded", "Referral Sent",
                     "Product Reviewed"]),
    st.sampled_from(["o1", "o2", "o3"]),
    st.integers(min_value=0, max_value=60 * 24 * 200),  # minutes after T0: up to 200 days
    st.booleans(),  # as the anonymous visitor (else as the known user)
)


def journey(anonymous_id: str, user_id: str, touches, identify_at: int) -> list:
    """Event ids sort as the touches do (ties in time are broken by id: the same way in every run)."""
    events = []
    for index, (name, order_id, minutes, anonymous) in enumerate(touches):
        ids = {"anonymousId": anonymous_id} if anonymous else {"userId": user_id}
        time = T0 + timedelta(minutes=minutes)
        if name == "page":
            data = TouchpointData(type="page", messageId=f"{user_id}-{index:03d}", timestamp=time, receivedAt=time,
                                  **ids)
        else:
            data = TouchpointData(type="track", event=name, messageId=f"{user_id}-{index:03d}", timestamp=time,
                                  receivedAt=time, properties={"order_id": order_id, "revenue": 10, "rating": 5},
                                  **ids)
        events.append(to_cloud_event(data, source="tests"))
    time = T0 + timedelta(minutes=identify_at)
    events.append(to_cloud_event(TouchpointData(type="identify", userId=user_id, anonymousId=anonymous_id,
                                                messageId=f"{user_id}-999", timestamp=time, receivedAt=time),
                                 source="tests"))
    return events


async def deliver(namespace, events, cuts: set[int], user_id: str) -> tuple[dict, list]:
    """Deliver in the given order and batching, sweep at NOW; the profile and its stored history."""
    engine = create_engine(namespace.database_url(BY_NAME["stage-engine"]))
    topics = Topics(namespace.topic_prefix)
    route = routes(topics=topics, rules=lambda: DEFAULT_RULES, clock=lambda: NOW)
    runner = ConsumerRunner(name="stage-test", consumer=None, producer=None, engine=engine, route=route)
    records = [record("touchpoints", offset, event.to_bytes(), key=event.subject.encode())
               for offset, event in enumerate(events)]
    bounds = [0, *sorted(c for c in cuts if c < len(records)), len(records)]
    try:
        for start, end in zip(bounds, bounds[1:], strict=False):
            await runner.process(records[start:end])
        while await sweep_once(engine, rules=DEFAULT_RULES, now=NOW, topic=topics.stage_transitions):
            pass
        async with engine.connect() as conn:
            profile, _ = await reads.find_profile(conn, customer_id=user_id)
            history = await reads.history_of(conn, profile_id=profile.id)
    finally:
        await engine.dispose()
    seen = {"stage": profile.state.stage, "since": profile.state.stage_since, "facts": profile.state.facts,
            "previous": profile.previous_stage, "first_seen": profile.first_seen_at,
            "last_seen": profile.last_seen_at, "anonymous_ids": profile.anonymous_ids}
    return seen, [(t["id"], t["from_stage"], t["to_stage"], t["reason"], t["cause_event_ids"], t["event_time"])
                  for t in history]  # as the API orders it: by event time, ties by the causing event


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(touches=st.lists(TOUCH, min_size=1, max_size=8), identify_at=st.integers(0, 60 * 24 * 200),
       order=st.randoms(use_true_random=False), repeats=st.sets(st.integers(0, 8)),
       cuts=st.sets(st.integers(min_value=1, max_value=10)))
async def test_shuffled_and_duplicated_delivery_stores_the_in_order_history(namespace, touches, identify_at, order,
                                                                            repeats, cuts):
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    in_order = journey(f"a-{first}", f"u-{first}", touches, identify_at)
    in_order.sort(key=lambda e: (e.data["timestamp"], e.id))
    expected = await deliver(namespace, in_order, set(), f"u-{first}")

    shuffled = journey(f"a-{second}", f"u-{second}", touches, identify_at)  # the same journey, another customer
    ids = {new.id: new.id.replace(second, first) for new in shuffled}
    shuffled += [shuffled[i] for i in sorted(repeats) if i < len(shuffled)]  # redeliveries
    order.shuffle(shuffled)
    seen, history = await deliver(namespace, shuffled, cuts, f"u-{second}")

    assert seen["stage"] == expected[0]["stage"]
    assert {k: v for k, v in seen.items() if k not in ("facts", "anonymous_ids")} == {
        k: v for k, v in expected[0].items() if k not in ("facts", "anonymous_ids")}
    assert seen["facts"].revenue == expected[0]["facts"].revenue
    assert len(seen["facts"].orders) == len(expected[0]["facts"].orders)
    # The same moves, reasons and moments, in the same order; causes are the same events (under their new ids).
    assert [(f, t, r, [ids.get(c, c) for c in cause], at) for _, f, t, r, cause, at in history] == [
        (f, t, r, cause, at) for _, f, t, r, cause, at in expected[1]]
