"""Segment-compatible validation and normalisation at ingest: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_ingest.domain.touchpoints import InvalidTouchpoint, corrected_timestamp, normalise
from lifecycle_shared.events import snake_name, touchpoint_event_type

RECEIVED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def fields_at_fault(raw, **kwargs) -> list[str]:
    with pytest.raises(InvalidTouchpoint) as caught:
        normalise(raw, received_at=RECEIVED, **kwargs)
    return [error["field"] for error in caught.value.errors]


def test_clock_skew_is_corrected_from_sent_at():
    client_time = RECEIVED - timedelta(hours=3)  # the device clock is 3 h behind
    assert corrected_timestamp(client_time=client_time, sent_at=client_time + timedelta(seconds=2),
                               received_at=RECEIVED) == RECEIVED - timedelta(seconds=2)


def test_without_sent_at_the_client_time_is_kept():
    client_time = RECEIVED - timedelta(minutes=1)
    assert corrected_timestamp(client_time=client_time, sent_at=None, received_at=RECEIVED) == client_time


def test_without_any_time_the_received_time_is_used():
    touchpoint = normalise({"type": "track", "event": "X", "anonymousId": "a"}, received_at=RECEIVED)
    assert touchpoint.timestamp == RECEIVED and touchpoint.originalTimestamp is None


def test_batch_sent_at_and_context_apply_to_each_item():
    client_time = RECEIVED - timedelta(hours=1)
    touchpoint = normalise(
        {"type": "track", "event": "X", "anonymousId": "a", "timestamp": client_time.isoformat(),
         "context": {"ip": "1.2.3.4"}},
        received_at=RECEIVED, batch_context={"library": {"name": "analytics-python"}, "ip": "0.0.0.0"},
        batch_sent_at=client_time + timedelta(seconds=1))
    assert touchpoint.timestamp == RECEIVED - timedelta(seconds=1)
    assert touchpoint.context == {"library": {"name": "analytics-python"}, "ip": "1.2.3.4"}


def test_message_id_is_generated_when_absent_and_kept_when_given():
    generated = normalise({"type": "page", "anonymousId": "a"}, received_at=RECEIVED).messageId
    assert len(generated) == 36
    assert normalise({"type": "page", "anonymousId": "a", "messageId": "m-1"}, received_at=RECEIVED).messageId == "m-1"


def test_numeric_ids_become_strings():
    touchpoint = normalise({"type": "identify", "userId": 42}, received_at=RECEIVED)
    assert touchpoint.userId == "42"


def test_segment_library_envelope_fields_are_accepted_and_carried_but_never_the_key():
    raw = {"type": "track", "event": "X", "userId": "u", "integrations": {}, "_metadata": {"bundled": []},
           "writeKey": "k", "channel": "server", "version": 2, "sentAt": RECEIVED.isoformat(),
           "receivedAt": "2001-01-01T00:00:00Z", "userID": "typo", "options": None}
    data = normalise(raw, received_at=RECEIVED).model_dump(mode="json", exclude_none=True)
    assert {name: data[name] for name in ("integrations", "_metadata", "channel", "version", "userID")} == {
        "integrations": {}, "_metadata": {"bundled": []}, "channel": "server", "version": 2, "userID": "typo"}
    assert "writeKey" not in data and data["receivedAt"] == RECEIVED.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("kind", ["page", "screen"])
def test_null_where_segment_libraries_send_null_is_absent(kind):
    raw = {"type": kind, "anonymousId": "a", "name": None, "category": None, "properties": None,
           "traits": None, "context": None, "messageId": None}
    touchpoint = normalise(raw, received_at=RECEIVED)
    assert (touchpoint.category, touchpoint.properties, touchpoint.context) == (None, {}, {})
    assert normalise({**raw, "category": "Docs"}, received_at=RECEIVED).category == "Docs"


def test_group_traits_are_the_groups_not_the_persons():
    group = normalise({"type": "group", "userId": "u", "groupId": "acme", "traits": {"name": "Acme"},
                       "context": {"traits": {"email": "ann@example.com"}}}, received_at=RECEIVED)
    identify = normalise({"type": "identify", "userId": "u", "traits": {"name": "Ann"}}, received_at=RECEIVED)
    assert group.all_traits() == {"email": "ann@example.com"}
    assert identify.all_traits() == {"name": "Ann"}


@pytest.mark.parametrize(("raw", "fields"), [
    ({"type": "track", "anonymousId": "a"}, ["event"]),
    ({"type": "track", "event": "X"}, ["userId"]),
    ({"type": "alias", "userId": "u"}, ["previousId"]),
    ({"type": "group", "userId": "u"}, ["groupId"]),
    ({"type": "track", "event": "X", "anonymousId": "undefined"}, ["anonymousId"]),
    ({"type": "track", "event": "X", "userID": "typo"}, ["userId"]),
    ({"type": "track", "event": "X", "userId": "u", "properties": ["a"]}, ["properties"]),
    ({"type": "identify", "userId": "u", "traits": "ann@example.com"}, ["traits"]),
    ({"type": "click", "userId": "u"}, ["type"]),
    ({"type": "track", "event": "X", "userId": "u", "messageId": "x" * 101}, ["messageId"]),
    ([], ["(body)"]),
])
def test_invalid_touchpoints_name_the_field(raw, fields):
    assert fields_at_fault(raw) == fields


@pytest.mark.parametrize(("raw", "kept"), [
    ({"type": "page", "anonymousId": "a1", "userId": "", "messageId": "m1"}, ("anonymousId", "a1")),
    ({"type": "track", "event": "X", "anonymousId": "a1", "userId": "   "}, ("anonymousId", "a1")),
    ({"type": "identify", "userId": "u1", "anonymousId": ""}, ("userId", "u1")),
    ({"type": "track", "event": "X", "userId": 7, "anonymousId": ""}, ("userId", "7")),
])
def test_an_empty_id_beside_a_usable_one_is_absent(raw, kept):
    """RudderStack's browser SDK sends `userId: ""` on every event before identify."""
    data = normalise(raw, received_at=RECEIVED).model_dump(exclude_none=True)
    name, value = kept
    assert data[name] == value
    assert not ({"userId", "anonymousId"} - {name}) & data.keys()


@pytest.mark.parametrize(("raw", "fields"), [
    ({"type": "page", "userId": ""}, ["userId"]),
    ({"type": "page", "anonymousId": ""}, ["anonymousId"]),
    ({"type": "page", "userId": "", "anonymousId": ""}, ["userId"]),
    ({"type": "page", "userId": "", "anonymousId": "null"}, ["anonymousId"]),
    ({"type": "page", "userId": "undefined", "anonymousId": "a1"}, ["userId"]),
    ({"type": "page", "userId": "0", "anonymousId": "a1"}, ["userId"]),
    ({"type": "page", "userId": "u1", "anonymousId": "null"}, ["anonymousId"]),
    ({"type": "alias", "userId": "", "anonymousId": "a1", "previousId": "p1"}, ["userId"]),
    ({"type": "alias", "userId": "u1", "previousId": ""}, ["previousId"]),
])
def test_no_usable_id_or_a_placeholder_id_is_still_refused(raw, fields):
    assert fields_at_fault(raw) == fields


def test_endpoint_type_must_match_body_type():
    assert fields_at_fault({"type": "page", "anonymousId": "a"}, default_type="track") == ["type"]


@pytest.mark.parametrize(("name", "expected"), [
    ("Order Completed", "order_completed"), ("product-viewed", "product_viewed"),
    ("  Signed   Up ", "signed_up"), ("order_completed", "order_completed"),
])
def test_event_names_become_snake_case(name, expected):
    assert snake_name(name) == expected


def test_cloud_event_type_per_call_type():
    page = normalise({"type": "page", "anonymousId": "a"}, received_at=RECEIVED)
    identify = normalise({"type": "identify", "userId": "u"}, received_at=RECEIVED)
    track = normalise({"type": "track", "event": "Order Completed", "userId": "u"}, received_at=RECEIVED)
    assert [touchpoint_event_type(t) for t in (page, identify, track)] == [
        "touchpoint.page_viewed", "touchpoint.identify", "touchpoint.order_completed"]


@pytest.mark.parametrize("raw", [
    {"type": "track", "event": "Order Completed", "userId": 7, "properties": {"revenue": "12.50", "big": 2**70},
     "originalTimestamp": "2026-05-01T11:59:00+02:00", "sentAt": "2026-05-01T12:00:00Z", "channel": "server"},
    {"type": "page", "anonymousId": "a", "name": "Home", "category": "Docs", "context": {"page": {"path": "/"}}},
    {"type": "identify", "userId": "u", "traits": {"email": "ann@example.com", "name": "Ann"}, "messageId": "m1"},
])
def test_the_published_record_is_the_validated_contract(raw):
    """The hot path serialises `touchpoint_data` without validating it again: the record must read
    back as the same `TouchpointData` that validation gives, inside a valid CloudEvent."""
    from lifecycle_ingest.domain.touchpoints import touchpoint_data
    from lifecycle_ingest.publisher import to_record
    from lifecycle_shared.events import CloudEvent, TouchpointData, touchpoint_event_type

    data = touchpoint_data(raw, received_at=RECEIVED)
    event = CloudEvent.model_validate_json(to_record(data, source="shop").value)
    expected = TouchpointData.model_validate(data)
    assert TouchpointData.model_validate(event.data) == expected
    assert (event.id, event.subject, event.type, event.time) == (
        f"shop/{expected.messageId}", expected.userId or expected.anonymousId, touchpoint_event_type(expected),
        expected.timestamp)


def test_the_published_digest_is_the_content_digest():
    from lifecycle_ingest.domain.touchpoints import content_digest, touchpoint_data
    from lifecycle_ingest.publisher import to_record

    data = touchpoint_data({"type": "track", "event": "X", "userId": "u", "properties": {"a": [1, {"b": None}]},
                            "originalTimestamp": "2026-05-01T11:00:00Z"}, received_at=RECEIVED)
    assert to_record(data, source="shop").digest == content_digest(data)
    assert data["messageId"] == "content-" + content_digest(data)[:40]


@pytest.mark.parametrize(("sent", "historical"), [
    ({}, False), ({"historical": True}, False), ({"historical": "yes"}, False),
    ({}, True), ({"historical": False}, True), ({"historical": None}, True),
])
def test_historical_is_the_paths_never_the_clients(sent, historical):
    raw = {"type": "track", "event": "X", "userId": "u", **sent}
    assert normalise(raw, received_at=RECEIVED, historical=historical).historical is historical


def test_a_historical_event_has_the_digest_and_generated_id_of_the_same_event_sent_live():
    """`historical` says how the event came (the path), not what it is: a re-import, or the import of an
    event once sent live, is a retry of it, not a reused messageId."""
    from lifecycle_ingest.domain.touchpoints import content_digest, touchpoint_data
    from lifecycle_ingest.publisher import to_record

    raw = {"type": "track", "event": "Order Completed", "userId": "u", "originalTimestamp": "2019-03-01T10:00:00Z",
           "properties": {"order_id": "o-1", "revenue": 10}}
    live = touchpoint_data({**raw, "historical": True}, received_at=RECEIVED)
    imported = touchpoint_data(raw, received_at=RECEIVED, historical=True)
    again = touchpoint_data(raw, received_at=RECEIVED + timedelta(days=1), historical=True)
    assert (live["historical"], imported["historical"]) == (False, True)
    assert content_digest(live) == content_digest(imported) == content_digest(again)
    assert live["messageId"] == imported["messageId"] == again["messageId"]
    assert to_record(imported, source="shop").digest == to_record(again, source="shop").digest


def test_the_published_record_carries_historical():
    from lifecycle_ingest.domain.touchpoints import touchpoint_data
    from lifecycle_ingest.publisher import to_record
    from lifecycle_shared.events import CloudEvent, TouchpointData

    for historical in (True, False):
        data = touchpoint_data({"type": "identify", "userId": "u", "historical": not historical},
                               received_at=RECEIVED, historical=historical)
        event = CloudEvent.model_validate_json(to_record(data, source="shop").value)
        assert event.data["historical"] is historical
        assert TouchpointData.model_validate(event.data) == TouchpointData.model_validate(data)
