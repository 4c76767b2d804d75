"""The shared runner's order of effects, against real PostgreSQL and a real broker."""

from __future__ import annotations

import logging
import uuid

import pytest
from lifecycle_devstack.ports import free_port
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import LEGACY_TYPE_HEADER, TYPE_HEADER
from lifecycle_shared.kafka.registry import Route, each
from lifecycle_shared.kafka.runner import ConsumerRunner, InfrastructureDown, RetryPolicy
from lifecycle_shared.logging import PersonalDataSafeFormatter
from lifecycle_shared.testing import make_cloud_event, read_topic
from prometheus_client import REGISTRY
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from tests.support.kafka_records import record
from tests.support.runner_parts import AnyData, FlakyHandler, applied_by, make_runner


async def test_a_poison_record_is_retried_then_dead_lettered_and_its_batch_still_applies(runner_parts, namespace):
    engine, producer = runner_parts
    topic = namespace.topic_prefix + "touchpoints.v1"
    good1, poison, good2 = (make_cloud_event() for _ in range(3))
    handler = FlakyHandler(poison={poison.id})
    await make_runner(engine, producer, handler).process(
        [record(topic, 0, good1.to_bytes()), record(topic, 1, poison.to_bytes()), record(topic, 2, good2.to_bytes())])

    ids = [good1.id, poison.id, good2.id]
    seen, emitted = await applied_by(engine, ids)
    assert seen == {good1.id, good2.id}
    assert emitted == {f"derived-{good1.id}", f"derived-{good2.id}"}
    assert handler.calls.count(poison.id) == 1 + 3  # once in the batch, then 3 isolated attempts
    dead = await read_topic(namespace.kafka_bootstrap, topic + ".dlq", until=lambda r: r.value == poison.to_bytes())
    headers = dict(next(r for r in dead if r.value == poison.to_bytes()).headers)
    assert headers["dlq.error"] == b"RuntimeError"  # the class only: error texts quote data
    assert (headers["dlq.original.offset"], headers["traceparent"]) == (b"1", b"00-abc")


async def test_a_permanent_error_is_dead_lettered_without_retries(runner_parts, namespace):
    engine, producer = runner_parts
    topic = namespace.topic_prefix + "touchpoints.v1"
    broken = make_cloud_event()
    handler = FlakyHandler(broken={broken.id})
    await make_runner(engine, producer, handler).process([record(topic, 5, broken.to_bytes())])
    assert handler.calls == [broken.id, broken.id]  # the batch attempt, then one isolated attempt
    await read_topic(namespace.kafka_bootstrap, topic + ".dlq", until=lambda r: r.value == broken.to_bytes())


async def test_an_event_seen_before_or_twice_in_a_batch_applies_once(runner_parts, namespace):
    engine, producer = runner_parts
    topic = namespace.topic_prefix + "touchpoints.v1"
    event = make_cloud_event(id=f"dup-{uuid.uuid4()}")
    handler = FlakyHandler()
    runner = make_runner(engine, producer, handler)
    await runner.process([record(topic, 0, event.to_bytes()), record(topic, 1, event.to_bytes())])
    await runner.process([record(topic, 2, event.to_bytes())])  # a redelivery after a crash
    assert handler.calls == [event.id]
    assert await applied_by(engine, [event.id]) == ({event.id}, {f"derived-{event.id}"})


async def test_a_database_outage_dead_letters_nothing(runner_parts, namespace):
    _, producer = runner_parts
    unreachable = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere")
    topic = namespace.topic_prefix + "touchpoints.v1"
    event = make_cloud_event()
    runner = make_runner(unreachable, producer, FlakyHandler())
    with pytest.raises(InfrastructureDown):
        await runner.process([record(topic, 9, event.to_bytes())])
    await unreachable.dispose()
    dead = await read_topic(namespace.kafka_bootstrap, topic + ".dlq")
    assert event.to_bytes() not in {r.value for r in dead}


# The routing header, and the one records written before its rename carry (they stay on the topics).
@pytest.mark.parametrize("type_header", [TYPE_HEADER, LEGACY_TYPE_HEADER])
async def test_records_typed_for_nobody_here_are_skipped_undecoded(runner_parts, namespace, type_header):
    engine, producer = runner_parts
    topic = namespace.topic_prefix + "touchpoints.v1"
    route = Route(AnyData, each(FlakyHandler()))
    runner = ConsumerRunner(name="runner-test", consumer=None, producer=producer, engine=engine,
                            route=lambda event_type: route if event_type == "touchpoint.wanted" else None)
    skip_key = f"skip-{uuid.uuid4().hex[:8]}".encode()
    skipped = record(topic, 20, b"not even json", key=skip_key)
    skipped.headers = [(type_header, b"touchpoint.unwanted")]
    wanted = make_cloud_event(type="touchpoint.wanted")
    typed_wanted = record(topic, 21, wanted.to_bytes())
    typed_wanted.headers = [(type_header, b"touchpoint.wanted")]
    await runner.process([skipped, typed_wanted])
    assert await applied_by(engine, [wanted.id]) == ({wanted.id}, {f"derived-{wanted.id}"})
    dead = await read_topic(namespace.kafka_bootstrap, topic + ".dlq")
    assert skip_key not in {r.key for r in dead}


async def test_a_dead_letter_of_a_record_with_the_legacy_type_header_carries_the_routing_header(
        runner_parts, namespace):
    engine, producer = runner_parts
    topic = namespace.topic_prefix + "touchpoints.v1"
    broken = make_cloud_event()
    old = record(topic, 50, broken.to_bytes())
    old.headers = [("content-type", b"application/cloudevents+json; charset=utf-8"),
                   (LEGACY_TYPE_HEADER, broken.type.encode())]
    await make_runner(engine, producer, FlakyHandler(broken={broken.id})).process([old])
    dead = await read_topic(namespace.kafka_bootstrap, topic + ".dlq", until=lambda r: r.value == broken.to_bytes())
    names = [name for name, _ in next(r for r in dead if r.value == broken.to_bytes()).headers]
    assert names[:2] == ["content-type", TYPE_HEADER]  # readable by CloudEvents SDKs: no `ce_` header
    assert not [name for name in names if name.lower().startswith("ce_")]


async def test_a_database_error_quoting_personal_data_leaves_it_out_of_dlq_headers_and_logs(
        runner_parts, namespace, caplog):
    engine, producer = runner_parts
    topic = namespace.topic_prefix + "touchpoints.v1"
    email, phone = "ann.pii@example.com", "+84 912 345 678"

    async def store_contact(conn, typed):  # PostgreSQL refuses the NUL; its error quotes the row
        await conn.execute(text("INSERT INTO inbox (event_id, topic) VALUES (:id, :who)"),
                           {"id": f"x-{typed.event.id}", "who": f"{email} {phone}\x00"})
        return []

    event = make_cloud_event(data={"traits": {"email": email, "phone": phone}})
    runner = ConsumerRunner(name="runner-test", consumer=None, producer=producer, engine=engine,
                            route=lambda _: Route(AnyData, each(store_contact)),
                            retry=RetryPolicy(attempts=2, base_delay_s=0.01))
    with caplog.at_level(logging.INFO):  # as the services log (aiokafka: warnings only)
        await runner.process([record(topic, 30, event.to_bytes(), key=b"pii")])
    dead = [r for r in await read_topic(namespace.kafka_bootstrap, topic + ".dlq") if r.key == b"pii"]
    assert len(dead) == 1
    headers = b" ".join(value for _, value in dead[0].headers)
    assert b"SQLSTATE" in headers  # it says what failed...
    formatter = PersonalDataSafeFormatter("%(message)s")
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    assert "SQLSTATE" in logged
    for secret in (email, phone):  # ...and never about whom
        assert secret.encode() not in headers and secret not in logged


async def test_a_reused_id_with_another_body_is_counted_and_the_first_stays_applied(runner_parts, namespace):
    engine, producer = runner_parts
    topic = namespace.topic_prefix + "touchpoints.v1"
    first = make_cloud_event(digest="a" * 64)
    retry = first.model_copy()
    reused = first.model_copy(update={"digest": "b" * 64, "data": {"other": True}})
    handler = FlakyHandler()
    runner = make_runner(engine, producer, handler)
    before = _conflicts()
    await runner.process([record(topic, 40, first.to_bytes()), record(topic, 41, retry.to_bytes())])
    assert _conflicts() == before  # a retry (same digest) is an ordinary duplicate
    await runner.process([record(topic, 42, reused.to_bytes())])
    await runner.process([record(topic, 43, first.to_bytes()), record(topic, 44, reused.to_bytes())])
    assert _conflicts() == before + 2
    assert handler.calls == [first.id]


def _conflicts() -> float:
    return REGISTRY.get_sample_value("lifecycle_duplicate_conflicts_total", {"consumer": "runner-test"}) or 0.0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int


async def test_data_its_route_refuses_is_dead_lettered_at_once_and_the_handler_sees_only_typed_data(
        runner_parts, namespace):
    """The runner validates `data` into the route's model once, at decoding: a violation goes to the DLQ
    on its own (no batch failure, no retries) and handlers get validated data."""
    engine, producer = runner_parts
    topic = namespace.topic_prefix + "touchpoints.v1"
    seen = []

    async def handle(conn, typed):
        seen.append(typed.data)
        return []

    good, bad = make_cloud_event(data={"amount": 3}), make_cloud_event(data={"amount": "three", "x": 1})
    runner = make_runner(engine, producer, handle, model=Strict)
    await runner.process([record(topic, 60, bad.to_bytes(), key=b"bad-data"), record(topic, 61, good.to_bytes())])
    assert seen == [Strict(amount=3)]
    dead = [r for r in await read_topic(namespace.kafka_bootstrap, topic + ".dlq") if r.key == b"bad-data"]
    assert len(dead) == 1 and b"amount" in dict(dead[0].headers)["dlq.error"]
