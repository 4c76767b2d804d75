"""The restore runbook's re-publication (docs/erasure.md "Backups"): `python -m lifecycle_stage_engine
republish-erasures --since <the backup's time>`, run as an operator runs it, on real PostgreSQL. The two tests
share a namespace; the command reads every erasure since a time, so the second one's erasure is older than the
first one's backup and it asserts on its own erasure only.

- Messaging's database restored from before two erasures: the command writes exactly those two events again to
  the stage engine's outbox (same event id and data); messaging, fed them, erases the two customers; a second run
  adds them again and changes nothing in messaging.
- The stage engine's own database restored: its `erasures` lacks the erasure, so the default run finds nothing;
  `--from-database-url` (messaging's database) applies it to the stage engine again by its hashes, records it under
  the same erasure id and re-publishes it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta

import pytest
from lifecycle_devstack.services import BY_NAME, StackConfig
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_shared.db import create_engine
from lifecycle_shared.erasure import id_hashes
from lifecycle_shared.events import ERASURE_REQUESTED_TYPE, CloudEvent, ErasureRequestedData
from lifecycle_shared.topics import Topics
from lifecycle_stage_engine.erasure import erase_and_announce
from sqlalchemy import text

from tests.support.erasure import scan_database
from tests.support.in_process import kafka_settings
from tests.support.messaging import Clock, Shop
from tests.support.stage_engine import T0, _h, announced, deliver, ev, order

PEPPER = b"republish-test-pepper"
STAGE, MESSAGING = BY_NAME["stage-engine"], BY_NAME["messaging"]
_COUNTS = text("SELECT erasure_id::text, counts, requested_at FROM erasures "
               "WHERE erasure_id = ANY(CAST(:e AS uuid[])) ORDER BY erasure_id")
_ONE = text("SELECT erasure_id::text, counts, requested_at FROM erasures WHERE erasure_id = CAST(:e AS uuid)")


@pytest.fixture(scope="module")
def own_namespace(infra) -> StackConfig:
    """A namespace of this module's own with the stage engine's and messaging's databases."""
    config = infra.stack_config()
    infra.prepare(config, services=[STAGE, MESSAGING])
    return config


@pytest.fixture
async def stack(own_namespace):
    """The namespace, an engine on the stage engine's database, messaging as a `Shop` on its own."""
    config = own_namespace
    stage, messaging = create_engine(config.database_url(STAGE)), create_engine(config.database_url(MESSAGING))
    settings = MessagingSettings(environment="development", database_url=config.database_url(MESSAGING),
                                 kafka=kafka_settings(config), erasure_pepper=PEPPER.decode())
    yield config, stage, Shop(messaging, settings, Clock(T0), erasure_pepper=PEPPER)
    await stage.dispose()
    await messaging.dispose()


def republish(config: StackConfig, *args: str) -> list[str]:
    """The command as an operator runs it; the erasure ids it printed (its last line is the count)."""
    env = {**config.env(STAGE), "LIFECYCLE_ERASURE_PEPPER": PEPPER.decode()}
    done = subprocess.run([sys.executable, "-m", STAGE.module, "republish-erasures", *args], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    *ids, count = done.stdout.strip().splitlines()
    assert count.startswith(f"republished {len(ids)} erasures"), done.stdout
    return ids


def identify(user: str, anon: str, email: str, at: datetime) -> CloudEvent:
    return ev("identify", at, userId=user, anonymousId=anon, traits={"email": email})


class Person:
    def __init__(self, name: str) -> None:
        h = _h()
        self.user, self.anon, self.email = f"{name}-{h}", f"anon-{name}-{h}", f"{name}.{h}@example.com"

    @property
    def ids(self) -> list[str]:
        return [self.user, self.anon, self.email]


async def known_to_both(config: StackConfig, stage, shop: Shop, people: list[Person]) -> None:
    events = [e for p in people for e in (identify(p.user, p.anon, p.email, T0), order(T0, f"o-{_h()}",
                                                                                        userId=p.user))]
    await deliver(config, stage, events, now=T0)
    await shop.consume(*[identify(p.user, p.anon, p.email, T0) for p in people])


async def outbox_events(stage, topic: str, erasure_ids: list[str]) -> dict[str, list[CloudEvent]]:
    """The events the outbox holds for each erasure, oldest first (no relay runs here)."""
    found = await announced(stage, topic, erasure_ids)
    return {e: [CloudEvent.model_validate({k: v for k, v in event.items() if k != "key"})
                for event in found if event["key"] == e] for e in erasure_ids}


async def outbox_rows(stage) -> int:
    async with stage.connect() as conn:
        return (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()


async def test_a_restored_service_gets_the_erasures_since_the_backup_again(stack):
    config, stage, shop = stack
    topic = Topics(config.topic_prefix).stage_transitions
    a, b, c = Person("ann"), Person("bob"), Person("cy")
    await known_to_both(config, stage, shop, [a, b, c])
    erasures = []
    for person, day in ((a, 1), (b, 3), (c, 5)):
        async with stage.begin() as conn:
            report = await erase_and_announce(conn, person.user, pepper=PEPPER, now=T0 + timedelta(days=day),
                                              topic=topic)
        assert report is not None
        erasures.append(report.erasure_id)
    first = await outbox_events(stage, topic, erasures)
    assert [len(first[e]) for e in erasures] == [1, 1, 1]
    # Messaging was restored from a backup taken on day 2: it applied A's erasure, never saw B's and C's.
    await shop.consume(first[erasures[0]][0])
    assert all((await scan_database(shop.engine, [b.email, c.email])).values())

    rows = await outbox_rows(stage)
    assert republish(config, "--since", (T0 + timedelta(days=2)).isoformat()) == erasures[1:]
    second = await outbox_events(stage, topic, erasures)
    assert [len(second[e]) for e in erasures] == [1, 2, 2]  # exactly those since the backup, once more
    assert await outbox_rows(stage) == rows + 2  # and nothing else
    for e in erasures[1:]:
        assert second[e][1] == second[e][0] and second[e][1].type == ERASURE_REQUESTED_TYPE  # the same event
    await shop.consume(*[second[e][1] for e in erasures[1:]])
    people = a.ids + b.ids + c.ids
    assert {k: v for k, v in (await scan_database(shop.engine, people)).items() if k} == dict.fromkeys(people, [])
    async with shop.engine.connect() as conn:
        applied = (await conn.execute(_COUNTS, {"e": erasures})).all()
    assert sorted(row.erasure_id for row in applied) == sorted(erasures)

    # Again: the events are written once more; messaging, fed them, changes nothing.
    assert republish(config, "--since", (T0 + timedelta(days=2)).isoformat()) == erasures[1:]
    third = await outbox_events(stage, topic, erasures)
    assert [len(third[e]) for e in erasures] == [1, 3, 3]
    await shop.consume(*[third[e][2] for e in erasures[1:]])
    async with shop.engine.connect() as conn:
        assert (await conn.execute(_COUNTS, {"e": erasures})).all() == applied


def erasure_event(erasure_id: str, hashes: list[str], at: datetime) -> CloudEvent:
    data = ErasureRequestedData(erasure_id=erasure_id, id_hashes=hashes, requested_at=at)
    return CloudEvent(id=f"erasure/{erasure_id}", source="/stage-engine", type=ERASURE_REQUESTED_TYPE, time=at,
                      subject=erasure_id, data=data.model_dump(mode="json"))


async def test_a_restored_stage_engine_takes_the_erasures_from_messaging(stack):
    config, stage, shop = stack
    topic = Topics(config.topic_prefix).stage_transitions
    d = Person("dee")
    await known_to_both(config, stage, shop, [d])
    # Erased; the stage engine's database was then restored from its backup of the day before: only messaging (and
    # loyalty) still record the erasure.
    erasure_id, hashes, at = str(uuid.uuid4()), id_hashes(PEPPER, [d.user, d.anon]), T0 - timedelta(days=20)
    await shop.consume(erasure_event(erasure_id, hashes, at))
    since = (at - timedelta(days=1)).isoformat()
    assert erasure_id not in republish(config, "--since", since)  # the stage engine's own record lacks it
    assert (await scan_database(stage, [d.user]))[d.user]

    messaging_url = config.database_url(MESSAGING)
    assert erasure_id in republish(config, "--since", since, "--from-database-url", messaging_url)
    found = await scan_database(stage, d.ids)
    assert {k: v for k, v in found.items() if k} == dict.fromkeys(d.ids, [])
    async with stage.connect() as conn:
        recorded = (await conn.execute(_ONE, {"e": erasure_id})).first()
    assert recorded is not None and recorded.requested_at == at
    assert recorded.counts["identities"] >= 2 and recorded.counts["profiles"] >= 1, recorded
    events = (await outbox_events(stage, topic, [erasure_id]))[erasure_id]
    assert len(events) == 1 and events[0].data["id_hashes"] == hashes and d.user not in events[0].to_bytes().decode()

    # Again, from both records: announced once more, nothing new erased.
    assert erasure_id in republish(config, "--since", since, "--from-database-url", messaging_url)
    assert len((await outbox_events(stage, topic, [erasure_id]))[erasure_id]) == 2
    async with stage.connect() as conn:
        assert (await conn.execute(_ONE, {"e": erasure_id})).first() == recorded
