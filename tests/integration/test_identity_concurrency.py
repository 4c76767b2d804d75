"""Two stage-engine instances never split a customer: a visitor's page view and their sign-up,
on different partitions (keyed by the anonymousId and by the userId), applied at the same time by
two instances - each its own runner and connection pool on the same database - end as one profile
holding both ids. Merges whose profiles sit on different partitions are safe the same way."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from lifecycle_devstack.services import BY_NAME
from lifecycle_ingest.publisher import to_cloud_event
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.runner import ConsumerRunner
from lifecycle_shared.topics import Topics
from lifecycle_stage_engine.db.models import identities, profiles
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES
from lifecycle_stage_engine.handlers import routes
from sqlalchemy import func, select

from tests.support.kafka_records import record

NOW = datetime.now(UTC)
VISITORS = 100


def event(**fields):
    data = TouchpointData(messageId=str(uuid.uuid4()), timestamp=NOW - timedelta(seconds=30), receivedAt=NOW,
                          **fields)
    return to_cloud_event(data, source="tests")


def instance(namespace, name: str) -> ConsumerRunner:
    route = routes(topics=Topics(namespace.topic_prefix), rules=lambda: DEFAULT_RULES, clock=lambda: NOW)
    return ConsumerRunner(name=name, consumer=None, producer=None, route=route,
                          engine=create_engine(namespace.database_url(BY_NAME["stage-engine"])))


async def apply_in_batches(runner: ConsumerRunner, events, size: int) -> None:
    records = [record("touchpoints", i, e.to_bytes(), key=e.subject.encode()) for i, e in enumerate(events)]
    for start in range(0, len(records), size):
        await runner.process(records[start:start + size])


async def live_profiles_of(namespace, ids: list[str]) -> set[str]:
    engine = create_engine(namespace.database_url(BY_NAME["stage-engine"]))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(func.distinct(profiles.c.id)).join(
                identities, identities.c.profile_id == profiles.c.id).where(
                identities.c.id_value.in_(ids), profiles.c.merged_into.is_(None)))
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def test_a_concurrent_page_view_and_sign_up_never_split_a_visitor(namespace):
    tag = uuid.uuid4().hex[:6]
    visitors = [(f"anon-{tag}-{i}", f"user-{tag}-{i}") for i in range(VISITORS)]
    page_views = [event(type="page", anonymousId=anonymous) for anonymous, _ in visitors]
    sign_ups = [event(type="track", event="Signed Up", userId=user, anonymousId=anonymous)
                for anonymous, user in visitors]
    one, two = instance(namespace, "engine-1"), instance(namespace, "engine-2")
    try:
        await asyncio.gather(apply_in_batches(one, page_views, 5), apply_in_batches(two, sign_ups, 7))
    finally:
        await one.engine.dispose()
        await two.engine.dispose()
    split = [v for v in visitors if len(await live_profiles_of(namespace, list(v))) != 1]
    assert split == [], f"{len(split)} of {VISITORS} visitors split into two live profiles"


async def test_merges_across_partitions_at_once_leave_one_profile_per_person(namespace):
    """Each person browses on two devices (two anonymous profiles, created by one instance) and
    signs in on both at once (each sign-in applied by the other instance): one live profile each."""
    tag = uuid.uuid4().hex[:6]
    people = [(f"d1-{tag}-{i}", f"d2-{tag}-{i}", f"user-{tag}-{i}") for i in range(40)]
    browsing = [event(type="page", anonymousId=device) for d1, d2, _ in people for device in (d1, d2)]
    warm = instance(namespace, "engine-0")
    try:
        await apply_in_batches(warm, browsing, 50)
    finally:
        await warm.engine.dispose()
    first = [event(type="identify", userId=user, anonymousId=d1) for d1, _, user in people]
    second = [event(type="identify", userId=user, anonymousId=d2) for _, d2, user in people]
    one, two = instance(namespace, "engine-1"), instance(namespace, "engine-2")
    try:
        await asyncio.gather(apply_in_batches(one, first, 3), apply_in_batches(two, second, 4))
    finally:
        await one.engine.dispose()
        await two.engine.dispose()
    split = [p for p in people if len(await live_profiles_of(namespace, list(p))) != 1]
    assert split == [], f"{len(split)} of {len(people)} people left in more than one live profile"
