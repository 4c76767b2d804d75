"""Every record on every topic, as the running services wrote it, reads with the CloudEvents SDK
(`from_kafka`, which picks the mode from the headers, and `from_structured`) and matches the AsyncAPI
document (docs/asyncapi.json): its value, headers and key against the schemas of its channel.

The pipeline has a namespace of its own, so what other tests write on purpose (records that never came
through ingest) is not in it; the only records not written by the services are the two this test
writes to force dead letters: CloudEvents whose data breaks the contract, which the consumers
dead-letter, and which the document's payload schema must refuse on their original topic.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka, from_structured
from cloudevents.core.formats.json import JSONFormat
from jsonschema import Draft7Validator
from lifecycle_devstack.infra import Infra
from lifecycle_shared.events import STAGE_CHANGED_TYPE, TRACEPARENT_HEADER, TYPE_HEADER, CloudEvent
from lifecycle_shared.testing import eventually, make_touchpoint, read_topic
from lifecycle_shared.topics import DLQ_SUFFIX, SENTINEL_PREFIX, STAGE_TRANSITIONS, TOUCHPOINTS, Topics
from referencing import Registry
from referencing.jsonschema import DRAFT7

from tests.support.pipeline import ADMIN_TOKEN, Pipeline, four_services
from tests.support.topics import read_every_topic

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
DOCUMENT_URI = "urn:lifecycle:asyncapi"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def own_pipeline(infra: Infra, mail_sink, tmp_path_factory) -> Iterator[Pipeline]:
    sink, smtp_port = mail_sink
    config = infra.stack_config(smtp_port=smtp_port, extra_env={"LIFECYCLE_INGEST_ADMIN_TOKEN": ADMIN_TOKEN})
    with four_services(infra, config, tmp_path_factory.mktemp("contract-logs")) as (processes, key):
        yield Pipeline(config=config, processes=processes, write_key=key, mail=sink)


async def test_every_record_on_every_topic_reads_as_a_cloudevent_and_matches_the_asyncapi_document(own_pipeline):
    pipeline, run = own_pipeline, uuid.uuid4().hex[:8]
    visitor, user = f"visitor-{run}", f"user-{run}"
    email = f"{user}@example.com"
    async with pipeline.client() as client:
        # A page view, an identify with an email, an order: touchpoints, stage changes, an email, points.
        for event, customer, stage in [
            (make_touchpoint(type="page", event=None, name="Home", anonymousId=visitor), visitor, "awareness"),
            (make_touchpoint(type="identify", event=None, anonymousId=visitor, userId=user,
                             traits={"email": email, "firstName": "Ann"}), user, "awareness"),
            (make_touchpoint(event="Order Completed", userId=user, anonymousId=None,
                             properties={"order_id": f"o-{run}", "revenue": 42.5}), user, "purchase"),
        ]:
            response = await eventually(lambda e=event: _accepted(pipeline, client, e), timeout_s=10,
                                        what="ingest to accept the event")
            assert response.status_code == 200, response.text
            await eventually(lambda c=customer, s=stage: _in_stage(pipeline, client, c, s),
                             what=f"{customer} in {stage}")
        await eventually(lambda: _json(pipeline, client, "loyalty", f"/v1/customers/{user}/balance",
                                       lambda b: b["balance"] == 42), what="the order's points")
        await eventually(lambda: _json(pipeline, client, "messaging", f"/v1/customers/{user}/messages",
                                       lambda log: "thank_you_feedback" in {m["template"] for m in log}),
                         timeout_s=60, what="the thank-you message")

    injected = await _force_dead_letters(pipeline, run)
    document = json.loads(DOCUMENT_PATH.read_text())
    prefix = pipeline.config.topic_prefix
    records = await read_every_topic(pipeline.config.kafka_bootstrap, prefix)
    sentinels = {topic for topic in records if topic.startswith(prefix + SENTINEL_PREFIX)}
    assert not [r for topic in sentinels for r in records.pop(topic)], "records in a broker-restart sentinel topic"
    assert set(records) == {prefix + name for name in Topics().all_with_dlq()}, "a topic the document lacks"

    channels = {channel["address"]: channel for channel in document["channels"].values()}
    checked: Counter[str] = Counter()
    for topic, topic_records in records.items():
        address = topic.removeprefix(prefix)
        by_type = _validators(document, channels[address])
        for record in topic_records:
            validators = by_type.get(dict(record.headers).get(TYPE_HEADER, b"").decode()) or by_type[None]
            _check_record(record, prefix, address, validators, injected)
            checked[address] += 1
            checked[dict(record.headers).get(TYPE_HEADER, b"?").decode()] += 1

    # Every topic had traffic, so the checks above ran on each (an empty topic would prove nothing).
    assert checked[TOUCHPOINTS] >= 3 + 1 and checked[STAGE_TRANSITIONS] >= 2 + 1, checked
    assert checked[TOUCHPOINTS + DLQ_SUFFIX] >= 1 and checked[STAGE_TRANSITIONS + DLQ_SUFFIX] >= 2, checked
    # Ingest copied the requests' trace context onto the touchpoints (validated above with the headers).
    traced = [dict(r.headers).get(TRACEPARENT_HEADER) for r in records[prefix + TOUCHPOINTS]]
    assert traced.count(TRACEPARENT.encode()) == 3, traced
    # Nothing but the injected records was dead-lettered.
    dead_ids = {json.loads(r.value)["id"] for name in (TOUCHPOINTS, STAGE_TRANSITIONS)
                for r in records[prefix + name + DLQ_SUFFIX]}
    assert dead_ids == set(injected)


def _check_record(record: ConsumerRecord, prefix: str, address: str, validators: dict[str, Draft7Validator],
                  injected: dict[str, str]) -> None:
    where = f"{address} offset {record.partition}/{record.offset}"
    names = [name for name, _ in record.headers]
    assert len(names) == len(set(names)), f"{where}: a header repeated: {names}"
    raw_headers = dict(record.headers)
    headers = {name: value.decode() for name, value in raw_headers.items()}
    key = record.key.decode() if record.key is not None else None
    value = json.loads(record.value)
    dead_letter = address.endswith(DLQ_SUFFIX)

    # The CloudEvents SDK, both ways a marketing tool would call it.
    message = KafkaMessage(headers=raw_headers, key=record.key, value=record.value)
    for read in (from_kafka, from_structured):
        event = read(message, JSONFormat())
        assert (event.get_id(), event.get_type(), event.get_source(), event.get_subject(), event.get_data()) == (
            value["id"], value["type"], value["source"], value["subject"], value["data"]), f"{where}: {read.__name__}"
        assert event.get_extension("partitionkey") == key
        if "digest" in value:
            assert event.get_extension("digest") == value["digest"]

    # The AsyncAPI document: headers, key and value against the channel's schemas.
    for part, instance in (("headers", headers), ("key", key)):
        errors = [e.message for e in validators[part].iter_errors(instance)]
        assert not errors, f"{where}: {part} {instance!r} against the document: {errors}"
    payload_errors = list(validators["payload"].iter_errors(value))
    if not dead_letter and value["id"] in injected:
        # Written by this test with data breaking the contract: the document must refuse it, for its data only.
        assert payload_errors and all(e.absolute_path and e.absolute_path[0] == "data" for e in payload_errors), where
    else:
        assert not payload_errors, f"{where}: value against the document: {[e.message for e in payload_errors]}"
    if dead_letter:
        assert value["id"] in injected, f"{where}: an event of the services was dead-lettered: {headers}"
        assert headers["dlq.original.topic"] == prefix + address.removesuffix(DLQ_SUFFIX), where
    else:
        assert key == value["subject"], f"{where}: the key is not the subject"
        assert headers[TYPE_HEADER] == value["type"], f"{where}: the routing header is not the type"


def _validators(document: dict[str, Any], channel: dict[str, Any]) -> dict[str | None, dict[str, Draft7Validator]]:
    """Validators for each of the channel's messages, by the event type its routing header names (None: the
    channel's first message, for a type the document does not name): its headers, its Kafka key and its
    payload; `$ref`s into the document resolve against it (AsyncAPI schemas are a superset of JSON Schema
    draft 7)."""
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT7.create_resource(document))
    found: dict[str | None, dict[str, Draft7Validator]] = {}
    for reference in channel["messages"].values():
        pointer = reference["$ref"].removeprefix("#")
        message = document["components"]["messages"][pointer.rsplit("/", 1)[1]]
        event_type = message["headers"]["properties"][TYPE_HEADER].get("const")
        validators = {part: Draft7Validator({"$ref": f"{DOCUMENT_URI}#{pointer}/{path}"}, registry=registry,
                                            format_checker=Draft7Validator.FORMAT_CHECKER)
                      for part, path in (("headers", "headers"), ("key", "bindings/kafka/key"), ("payload", "payload"))}
        found.setdefault(None, validators)
        found[event_type] = validators
    return found


async def _force_dead_letters(pipeline: Pipeline, run: str) -> dict[str, str]:
    """Produce, as a buggy producer might, a touchpoint and a stage change whose data break the contract:
    the stage engine dead-letters the first, messaging and loyalty the second. Returns id -> topic."""
    prefix, subject = pipeline.config.topic_prefix, f"broken-{run}"
    now = datetime.now(UTC)
    touchpoint = CloudEvent(id=f"contract-test/{run}-tp", source="/tests/contracts", type="touchpoint.page_viewed",
                            time=now, subject=subject, data={"type": "page", "anonymousId": subject})
    transition = CloudEvent(id=f"contract-test-{run}-sc", source="/tests/contracts", type=STAGE_CHANGED_TYPE,
                            time=now, subject=subject, data={"customer_id": subject})
    sent = {touchpoint.id: prefix + TOUCHPOINTS, transition.id: prefix + STAGE_TRANSITIONS}
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.config.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in (touchpoint, transition):
            await producer.send_and_wait(sent[event.id], event.to_bytes(), key=subject.encode(),
                                         headers=event.kafka_headers())
    finally:
        await producer.stop()
    for topic, consumers in ((prefix + TOUCHPOINTS, {"stage-engine"}), (prefix + STAGE_TRANSITIONS,
                                                                         {"messaging", "loyalty"})):
        async def dead_letters_from(topic=topic, consumers=consumers):
            dead = await read_topic(pipeline.config.kafka_bootstrap, topic + DLQ_SUFFIX, timeout_s=2)
            found = {dict(r.headers)["dlq.consumer"].decode() for r in dead if r.key == subject.encode()}
            return found if found >= consumers else None

        await eventually(dead_letters_from, timeout_s=60, what=f"dead letters in {topic}{DLQ_SUFFIX}")
    return sent


async def _accepted(pipeline: Pipeline, client, event: dict):
    """The answer to sending `event` (with W3C trace context, as an instrumented storefront would); None on
    a 401: ingest loads new keys within `key_refresh_s` (1 s), and the fixture's key is created once the
    services run (a refused request changes nothing)."""
    response = await client.post(pipeline.url("ingest") + "/v1/batch", json={"batch": [event]},
                                 auth=(pipeline.write_key, ""),
                                 headers={"traceparent": TRACEPARENT, "tracestate": "shop=e2e"})
    return None if response.status_code == 401 else response


async def _in_stage(pipeline: Pipeline, client, customer: str, stage: str):
    profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{customer}")
    return profile if profile and profile["stage"] == stage else None


async def _json(pipeline: Pipeline, client, service: str, path: str, ready):
    found = await pipeline.get(client, service, path)
    return found if found and ready(found) else None
