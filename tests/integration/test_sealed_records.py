"""The shared runner reading sealed records (docs/erasure.md, crypto-shredding), against real PostgreSQL, a real
broker and ingest's real key store: a sealed event opens and applies as the clear one would; one whose key an
erasure destroyed is dropped and counted, never dead-lettered nor applied; one that does not open under its key goes
to the DLQ alone; and without a key store the batch waits (infrastructure), nothing dropped."""

from __future__ import annotations

import uuid

import pytest
from lifecycle_devstack.services import BY_NAME
from lifecycle_ingest.db import subject_keys as db
from lifecycle_ingest.subject_keys import LocalKeyring
from lifecycle_shared.db import create_engine
from lifecycle_shared.erasure import id_hash
from lifecycle_shared.kafka.runner import InfrastructureDown
from lifecycle_shared.keyring import KeyCache
from lifecycle_shared.sealing import seal_value
from lifecycle_shared.testing import make_cloud_event, read_topic
from prometheus_client import REGISTRY

from tests.support.kafka_records import record
from tests.support.runner_parts import FlakyHandler, applied_by, make_runner

PEPPER = b"sealed-records-test-pepper"


@pytest.fixture
async def keyring(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["ingest"]))
    yield LocalKeyring(engine, PEPPER, KeyCache(ttl_s=0.001)), engine
    await engine.dispose()


def _erased_count() -> float:
    return REGISTRY.get_sample_value("lifecycle_events_consumed_total", {
        "consumer": "runner-test", "type": "other", "outcome": "erased"}) or 0.0


async def test_sealed_records_open_apply_drop_when_erased_and_dead_letter_when_broken(runner_parts, namespace,
                                                                                      keyring):
    engine, producer = runner_parts
    ring, ingest_db = keyring
    topic = namespace.topic_prefix + "touchpoints.v1"
    kept, erased = f"kept-{uuid.uuid4().hex[:8]}", f"erased-{uuid.uuid4().hex[:8]}"
    keys = await ring.keys_for([kept, erased])
    events = [make_cloud_event(subject=kept), make_cloud_event(subject=erased), make_cloud_event(subject=kept)]
    sealed = [seal_value(e.to_bytes(), key_id=keys[e.subject][0], key=keys[e.subject][1]) for e in events]
    broken = sealed[2].replace(b'"ciphertext":"', b'"ciphertext":"AAAA')  # tampered: does not open
    async with ingest_db.begin() as conn:  # an erasure destroys the second customer's key
        await db.erase(conn, str(uuid.uuid4()), [id_hash(PEPPER, erased)], pepper=PEPPER, now=events[0].time)
    before = _erased_count()

    handler = FlakyHandler()
    runner = make_runner(engine, producer, handler)
    runner.keyring = ring
    await runner.process([record(topic, 0, sealed[0], key=keys[kept][0].encode()),
                          record(topic, 1, sealed[1], key=keys[erased][0].encode()),
                          record(topic, 2, broken, key=keys[kept][0].encode())])

    assert handler.calls == [events[0].id]  # opened: the handler saw the clear event
    seen, _ = await applied_by(engine, [e.id for e in events])
    assert seen == {events[0].id}
    assert _erased_count() == before + 1
    dead = await read_topic(namespace.kafka_bootstrap, topic + ".dlq", until=lambda r: r.value == broken)
    assert dict(next(r for r in dead if r.value == broken).headers)["dlq.error"].startswith(b"PermanentError")
    assert not [r for r in dead if r.value == sealed[1]]  # the erased one is not kept anywhere


async def test_without_a_key_store_a_sealed_batch_waits(runner_parts, namespace, keyring):
    engine, producer = runner_parts
    ring, _ = keyring
    customer = f"c-{uuid.uuid4().hex[:8]}"
    ((key_id, key),) = (await ring.keys_for([customer])).values()
    event = make_cloud_event(subject=customer)
    handler = FlakyHandler()
    sealed = seal_value(event.to_bytes(), key_id=key_id, key=key)
    with pytest.raises(InfrastructureDown):
        await make_runner(engine, producer, handler).process([record(namespace.topic_prefix + "touchpoints.v1", 0,
                                                                     sealed)])
    assert handler.calls == []
    assert await applied_by(engine, [event.id]) == (set(), set())
