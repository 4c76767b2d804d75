"""Event contracts: the committed AsyncAPI document matches the pydantic models, and the records our
producers write read as CloudEvents with the CloudEvents SDK."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka, from_structured
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as v1_kafka
from jsonschema import Draft7Validator
from lifecycle_shared import asyncapi
from lifecycle_shared.events import (
    HISTORY_CORRECTED_TYPE,
    LEGACY_TYPE_HEADER,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    TYPE_HEADER,
    HistoryCorrectedData,
    TransitionRecord,
    event_type_header,
    valid_traceparent,
)
from lifecycle_shared.testing import make_cloud_event
from lifecycle_shared.topics import Topics
from referencing import Registry
from referencing.jsonschema import DRAFT7

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
DOCUMENT_URI = "urn:lifecycle:asyncapi"


def test_committed_asyncapi_document_is_generated_from_the_contracts():
    assert DOCUMENT.read_text() == asyncapi.render(), (
        "docs/asyncapi.json is stale: run `python -m lifecycle_shared.asyncapi > docs/asyncapi.json`")


def test_every_topic_is_documented_with_a_cloudevents_envelope_headers_and_key():
    document = asyncapi.build()
    assert {channel["address"] for channel in document["channels"].values()} == set(Topics().all_with_dlq())
    for message in document["components"]["messages"].values():
        assert {"id", "source", "type", "time", "subject", "data"} <= set(message["payload"]["required"])
        assert "digest" in message["payload"]["properties"]
        assert message["headers"]["type"] == "object"
        assert {"content-type", TYPE_HEADER, TRACEPARENT_HEADER} <= set(message["headers"]["properties"])
        assert "type" in message["bindings"]["kafka"]["key"]


def test_the_routing_header_does_not_switch_cloudevents_sdks_to_binary_mode():
    assert not TYPE_HEADER.lower().startswith("ce_")


@pytest.mark.parametrize("traceparent", [None, TRACEPARENT])
def test_a_record_as_our_producers_write_it_reads_with_the_cloudevents_sdk(traceparent):
    event = make_cloud_event(data={"type": "track", "nested": {"n": 1}}, digest="ab" * 32)
    headers = event.kafka_headers(traceparent=traceparent)
    assert [name for name, _ in headers] == ["content-type", TYPE_HEADER] + (
        [TRACEPARENT_HEADER] if traceparent else [])
    message = KafkaMessage(headers=dict(headers), key=event.subject.encode(), value=event.to_bytes())
    for read in (from_kafka, from_structured):
        parsed = read(message, JSONFormat())
        assert (parsed.get_id(), parsed.get_type(), parsed.get_source(), parsed.get_subject()) == (
            event.id, event.type, event.source, event.subject)
        assert parsed.get_time() == event.time
        assert parsed.get_data() == event.data
        assert parsed.get_extension("digest") == event.digest
        assert parsed.get_extension("partitionkey") == event.subject  # the key, as the SDK reports it
    # The v1 API of the same SDK as well.
    parsed = v1_kafka.from_structured(v1_kafka.KafkaMessage(dict(headers), event.subject.encode(), event.to_bytes()))
    assert (parsed["id"], parsed["type"], parsed["subject"], parsed.data) == (
        event.id, event.type, event.subject, event.data)


def test_the_old_ce_type_header_is_what_made_sdks_fail():
    """Why the header was renamed: a record written before the rename reads only in structured mode."""
    event = make_cloud_event(data={"a": 1})
    old = KafkaMessage(headers={"content-type": b"application/cloudevents+json; charset=utf-8",
                                LEGACY_TYPE_HEADER: event.type.encode()},
                       key=event.subject.encode(), value=event.to_bytes())
    with pytest.raises(CloudEventValidationError):  # read as binary mode: no source, no id in `ce_` headers
        from_kafka(old, JSONFormat())
    assert from_structured(old, JSONFormat()).get_id() == event.id


@pytest.mark.parametrize(("headers", "expected"), [
    ([(TYPE_HEADER, b"touchpoint.new")], "touchpoint.new"),
    ([(LEGACY_TYPE_HEADER, b"touchpoint.old")], "touchpoint.old"),
    ([(LEGACY_TYPE_HEADER, b"touchpoint.old"), (TYPE_HEADER, b"touchpoint.new")], "touchpoint.new"),
    ([("content-type", b"application/cloudevents+json")], None),
    (None, None),
])
def test_the_event_type_header_is_read_from_the_new_header_or_the_legacy_one(headers, expected):
    assert event_type_header(headers) == expected


@pytest.mark.parametrize(("value", "valid"), [
    (TRACEPARENT, True),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", True),
    ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True),  # a later version, read as 00
    ("00-abc", False),
    ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", False),  # uppercase is invalid
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),
    ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False),
    ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),
    (TRACEPARENT + "\n", False),
])
def test_only_a_valid_traceparent_is_written(value, valid):
    assert valid_traceparent(value) is valid
    headers = dict(make_cloud_event().kafka_headers(traceparent=value))
    assert (TRACEPARENT_HEADER in headers) is valid


@pytest.mark.parametrize(("traceparent", "tracestate", "expected"), [
    (TRACEPARENT, "congo=t61rcWkgMzE", [TRACEPARENT_HEADER, TRACESTATE_HEADER]),
    (TRACEPARENT, "", [TRACEPARENT_HEADER]),
    (TRACEPARENT, "x" * 513, [TRACEPARENT_HEADER]),
    ("00-abc", "congo=t61rcWkgMzE", []),  # no tracestate without a traceparent
])
def test_tracestate_travels_only_with_a_valid_traceparent(traceparent, tracestate, expected):
    headers = make_cloud_event().kafka_headers(traceparent=traceparent, tracestate=tracestate)
    assert [name for name, _ in headers][2:] == expected


def test_the_documented_headers_take_what_our_producers_write_and_refuse_ce_headers():
    document = asyncapi.build()
    schema = Draft7Validator(document["components"]["messages"]["touchpoint"]["headers"])
    event = make_cloud_event()
    written = {name: value.decode() for name, value in event.kafka_headers(traceparent=TRACEPARENT, tracestate="a=b")}
    assert not list(schema.iter_errors(written))
    assert list(schema.iter_errors({**written, LEGACY_TYPE_HEADER: event.type}))  # SDKs would go binary mode
    assert list(schema.iter_errors({"content-type": written["content-type"], TRACESTATE_HEADER: "a=b",
                                    TYPE_HEADER: event.type}))  # a tracestate needs its traceparent


def _unresolved(document: dict, node=..., where: str = "") -> list[str]:
    """Where `node` (the document first) holds a `$defs` or a `$ref` that names nothing in the document."""
    node = document if node is ... else node
    if isinstance(node, list):
        return [hit for index, value in enumerate(node) for hit in _unresolved(document, value, f"{where}/{index}")]
    if not isinstance(node, dict):
        return []
    found = [f"{where}/$defs"] if "$defs" in node else []
    if isinstance(node.get("$ref"), str):
        target: object = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
        found += [] if target is not None else [f"{where}/$ref: {node['$ref']}"]
    return found + [hit for key, value in node.items() for hit in _unresolved(document, value, f"{where}/{key}")]


def test_every_reference_resolves_from_the_document_root():
    """pydantic nests the models a model uses in a `$defs` of its schema, referred to as `#/$defs/...`; AsyncAPI's
    parser resolves `#/...` from the document root, so they are hoisted into components.schemas (tests/clients
    parses the document with @asyncapi/parser itself)."""
    assert _unresolved(json.loads(DOCUMENT.read_text())) == []
    assert _unresolved({"a": {"$defs": {"X": {}}, "items": {"$ref": "#/$defs/X"}}}) == [
        "/a/$defs", "/a/items/$ref: #/$defs/X"]


def _payload_validator(document: dict, message: str) -> Draft7Validator:
    """The message's payload schema as the e2e contract test reads it: `$ref`s resolved in the document."""
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT7.create_resource(document))
    return Draft7Validator({"$ref": f"{DOCUMENT_URI}#/components/messages/{message}/payload"}, registry=registry,
                           format_checker=Draft7Validator.FORMAT_CHECKER)


def test_a_history_correction_with_added_transitions_validates_against_the_document():
    now = datetime.now(UTC)
    added = TransitionRecord(id="t-2", from_stage="awareness", to_stage="consideration", reason="identified",
                             rule_version="v1", cause_event_ids=["web/m-1"], event_time=now, processed_at=now,
                             historical=False)
    data = HistoryCorrectedData(customer_id="u-1", stage="consideration", superseded=["t-1"], added=[added],
                                processed_at=now)
    event = make_cloud_event(type=HISTORY_CORRECTED_TYPE, subject="u-1", data=data.model_dump(mode="json"))
    record = json.loads(event.to_bytes())
    validator = _payload_validator(json.loads(DOCUMENT.read_text()), "historyCorrected")
    assert [error.message for error in validator.iter_errors(record)] == []
    # The items are checked against TransitionRecord, not waved through.
    del record["data"]["added"][0]["to_stage"]
    assert [list(error.absolute_path) for error in validator.iter_errors(record)] == [["data", "added", 0]]
