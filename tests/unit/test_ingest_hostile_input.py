"""Ingest under hostile and unlucky input: what it accepts, every consumer can store and apply;
what it refuses, it refuses naming the field. Pure, no I/O."""

from __future__ import annotations

import json
import math
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lifecycle_ingest.domain.json_values import (
    MAX_DEPTH,
    TOO_DEEP,
    UnparseableBody,
    parse,
    parse_checked,
    unstorable,
)
from lifecycle_ingest.domain.touchpoints import InvalidTouchpoint, content_digest, event_id, normalise
from lifecycle_ingest.publisher import to_cloud_event
from lifecycle_shared.orders import order_amount

RECEIVED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


def track(**fields) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "anonymousId": "a", **fields}


def fields_at_fault(raw: Any) -> list[str]:
    with pytest.raises(InvalidTouchpoint) as caught:
        normalise(raw, received_at=RECEIVED)
    return [error["field"] for error in caught.value.errors]


@pytest.mark.parametrize(("raw", "fields"), [
    (track(properties={"note": "a\x00b"}), ["properties.note"]),
    (track(properties={"a\x00b": 1}), ["properties.a\\u0000b"]),
    (track(event="Order\x00Completed"), ["event"]),
    (track(userId="u\x00"), ["userId"]),
    (track(context={"page": {"title": "\ud800"}}), ["context.page.title"]),
    (track(traits={"\udfff": "x"}), ["traits.\\udfff"]),
    (track(properties={"revenue": float("nan")}), ["properties.revenue"]),
    (track(properties={"price": float("inf")}), ["properties.price"]),
    (track(properties={"revenue": "NaN"}), ["properties.revenue"]),
    (track(properties={"revenue": "inf"}), ["properties.revenue"]),
    (track(properties={"total": "1e400"}), ["properties.total"]),
    (track(properties={"value": 2e15}), ["properties.value"]),
    (track(properties={"revenue": "twelve"}), ["properties.revenue"]),
    (track(properties=nested(MAX_DEPTH)), ["properties" + ".x" * (MAX_DEPTH - 1)]),
    (track(userId=True), ["userId"]),
    (track(anonymousId=1.5), ["anonymousId"]),
    (track(originalTimestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T23:59:59Z"), ["originalTimestamp"]),
    (track(originalTimestamp="2026-01-01T00:00:00Z", sentAt="9999-12-31T23:59:59Z"), ["sentAt"]),
    (track(timestamp="1969-12-31T23:59:59Z"), ["timestamp"]),  # the field the client sent
])
def test_what_storage_would_refuse_is_a_400_naming_the_field(raw, fields):
    assert fields_at_fault(raw) == fields


@pytest.mark.parametrize("properties", [
    {"revenue": 2**31}, {"revenue": "3000000000.50"}, {"revenue": 1e15}, {"revenue": 1e-300},
    {"quantity": 10**40}, {"tiny": 5e-324}, {"name": "名前 🎉 ‮RTL‬ é"}, {"emoji": "\U0001F600" * 1000},
    {"note": "x" * 30_000}, nested(MAX_DEPTH - 1), {"control": "\x01\x1f\x7f"}, {"list": [[[[[]]]]]},
])
def test_nasty_but_valid_values_are_accepted_and_stay_storable(properties):
    touchpoint = normalise(track(properties=properties), received_at=RECEIVED)
    assert_storable(to_cloud_event(touchpoint, source="shop").to_bytes())


def test_a_time_after_receipt_is_a_clock_error_clamped_to_receipt():
    touchpoint = normalise(track(timestamp="2999-01-01T00:00:00Z"), received_at=RECEIVED)
    assert touchpoint.timestamp == RECEIVED
    assert touchpoint.originalTimestamp == datetime(2999, 1, 1, tzinfo=UTC)  # kept as the client sent it


def test_a_client_clock_far_ahead_is_clamped_even_past_year_9999():
    touchpoint = normalise(track(originalTimestamp="9999-12-31T23:59:59Z", sentAt="2026-05-01T11:59:00Z"),
                           received_at=RECEIVED)
    assert touchpoint.timestamp == RECEIVED


def test_historical_imports_keep_their_time():
    assert normalise(track(timestamp="1997-01-01T00:00:00Z"), received_at=RECEIVED).timestamp.year == 1997


def test_a_retry_without_message_id_gets_the_same_id_when_the_event_carries_its_time():
    event = track(timestamp="2026-05-01T11:00:00Z", properties={"order_id": "o1", "revenue": 10})
    first = normalise({**event, "sentAt": "2026-05-01T11:00:01Z"}, received_at=RECEIVED)
    retry = normalise({**event, "sentAt": "2026-05-01T11:05:00Z"}, received_at=RECEIVED + timedelta(minutes=5))
    other = normalise({**event, "properties": {"order_id": "o2", "revenue": 10}}, received_at=RECEIVED)
    assert first.messageId == retry.messageId != other.messageId


def test_two_untimed_events_without_message_id_are_two_events():
    assert normalise(track(), received_at=RECEIVED).messageId != normalise(track(), received_at=RECEIVED).messageId


def test_message_ids_are_scoped_per_source():
    assert event_id(source="web", message_id="1") != event_id(source="pos", message_id="1")
    assert event_id(source="web", message_id="1") == event_id(source="web", message_id="1") == "web/1"
    # A public write key cannot pre-empt its source's server events: another id for the same messageId.
    assert event_id(source="web", message_id="1", key_kind="write") == "web+write/1"


def test_the_digest_tells_a_retry_from_a_reused_message_id():
    event = track(messageId="m-1", timestamp="2026-05-01T11:00:00Z", properties={"revenue": 10})
    first = normalise({**event, "sentAt": "2026-05-01T11:00:01Z"}, received_at=RECEIVED)
    retry = normalise({**event, "sentAt": "2026-05-01T11:01:00Z"}, received_at=RECEIVED + timedelta(minutes=1))
    reused = normalise({**event, "properties": {"revenue": 99}}, received_at=RECEIVED)
    digest = [content_digest(t.model_dump(exclude_none=True)) for t in (first, retry, reused)]
    assert digest[0] == digest[1] != digest[2]


@pytest.mark.parametrize(("depth", "field"), [(900, "p" + "[0]" * (MAX_DEPTH - 1)), (5000, "(body)"),
                                              (250_000, "(body)")])
def test_a_batch_item_nested_thousands_deep_is_found_without_losing_the_others(depth, field):
    body = b'{"sentAt": "x", "batch": [{"ok": 0}, {"p": ' + b"[" * depth + b"]" * depth + b'}, {"ok": 1}]}'
    batch = parse(body)["batch"]
    assert unstorable(batch[1]) == [{"field": field, "message": "nested deeper than 32 levels"}]
    assert batch[0] == {"ok": 0} and batch[2] == {"ok": 1}


def test_a_field_nested_thousands_deep_is_named_in_a_single_event():
    body = b'{"type": "track", "properties": ' + b"[" * 5000 + b"]" * 5000 + b', "event": "X"}'
    assert fields_at_fault(parse(body)) == ["properties"]


def test_a_deep_body_with_an_unclosed_string_full_of_escapes_is_refused_in_one_pass():
    with pytest.raises(UnparseableBody, match="unterminated"):  # a quadratic scan would take minutes
        parse(b'{"a": ' + b"[" * 5000 + b'"' + b'\\"' * 200_000)


def test_naming_problems_takes_memory_in_proportion_to_the_value():
    value = {"k" * 20_000: [0] * 20_000, "x": "\x00"}  # a path per element would be 400 MB
    tracemalloc.start()
    try:
        assert unstorable(value) == [{"field": "x", "message": "contains a NUL character (\\u0000)"}]
        assert tracemalloc.get_traced_memory()[1] < 20_000_000
    finally:
        tracemalloc.stop()


def test_the_deep_body_fallback_reads_json_as_strictly_as_the_standard_parser():
    deep = b"[" * 5000 + b"]" * 5000
    with pytest.raises(UnparseableBody, match="trailing comma"):
        parse(b'{"batch": [' + deep + b", {}, ]}")
    assert parse(b"\xef\xbb\xbf" + b'{"a": ' + deep + b"}")["a"] is TOO_DEEP  # a UTF-8 byte order mark


@pytest.mark.parametrize("body", [b'{"batch": [' + b"[" * 5000, b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"[" * 5000,
                                  b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"} extra", b'{1: ' + b"[" * 5000])
def test_a_deep_body_that_is_also_malformed_is_unparseable(body):
    with pytest.raises(UnparseableBody):
        parse(body)


def assert_storable(record_value: bytes) -> None:
    """What PostgreSQL (text, JSONB) and every JSON reader downstream can take."""
    text = record_value.decode("utf-8")  # no lone surrogates: they cannot be encoded
    assert "\\u0000" not in text
    envelope = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the record"))
    assert unstorable(envelope["data"], max_depth=MAX_DEPTH + 1) == []
    assert math.isfinite(order_amount(envelope["data"].get("properties", {})))


NASTY_TEXT = st.one_of(st.text(), st.sampled_from(["\x00", "a\x00", "\ud800", "x\udfffy", "\U0001F600", "\u202e",
                                                   "", "null", "0", "NaN", "Infinity", "1e400", "-1"]))
NUMBERS = st.one_of(st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([2**31, 2**63, 1e308, 5e-324]))
JSON_VALUES = st.recursive(st.none() | st.booleans() | NUMBERS | NASTY_TEXT,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NASTY_TEXT, inner, max_size=4),
                           max_leaves=20)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(userId=st.one_of(NASTY_TEXT, NUMBERS, st.booleans(), st.none()),
       properties=st.dictionaries(st.sampled_from(["revenue", "total", "value", "order_id", "x"]) | NASTY_TEXT,
                                  JSON_VALUES, max_size=5),
       context=JSON_VALUES, event=NASTY_TEXT, timestamp=st.one_of(st.none(), st.datetimes(), NASTY_TEXT))
def test_whatever_is_accepted_is_storable_and_anything_else_is_a_named_refusal(userId, properties, context,  # noqa: N803
                                                                               event, timestamp):
    raw = {"type": "track", "event": event, "userId": userId, "anonymousId": "a", "properties": properties,
           "context": context, "timestamp": timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp}
    try:
        touchpoint = normalise(raw, received_at=RECEIVED)
    except InvalidTouchpoint as refused:
        assert refused.errors and all(error["field"] and error["message"] for error in refused.errors)
        return
    assert userId is None or not isinstance(userId, bool | float)
    assert_storable(to_cloud_event(touchpoint, source="shop").to_bytes())


@pytest.mark.parametrize("body", [
    b'{"p": "C:\\\\u0000dir", "id": 123456789012345678901234567890}',   # an escaped backslash, then u0000
    b'{"p": "\\u0000", "id": 123456789012345678901234567890}',            # a NUL elsewhere in the body
    b'{"id": 123456789012345678901234567890}',
])
def test_integers_beyond_64_bits_are_kept_exact_whatever_else_the_body_holds(body):
    value, _ = parse_checked(body, max_depth=16)
    assert value["id"] == 123456789012345678901234567890 and isinstance(value["id"], int)


def test_malformed_json_deep_inside_a_value_makes_the_whole_body_unparseable():
    deep_and_broken = b"[" * 1001 + b"}" * 1000 + b"]"
    with pytest.raises(UnparseableBody, match="malformed"):
        parse(b'{"batch": [' + deep_and_broken + b', {"type": "page", "anonymousId": "a"}]}')


@settings(max_examples=300, deadline=None)
@given(value=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner,
                                                                                      max_size=3), max_leaves=8),
       cut=st.integers(min_value=0), insert=st.sampled_from(["", ",", "]", "}", ":", '"', "[", "{", " ", "x"]))
def test_the_deep_value_syntax_check_agrees_with_the_standard_parser(value, cut, insert):
    from lifecycle_ingest.domain.json_values import _well_formed

    text = json.dumps([value])
    at = cut % (len(text) + 1)
    mutated = text[:at] + insert + text[at + 1:] if insert else text[:at] + text[at + 1:]
    if not mutated.startswith(("[", "{")):
        return
    try:
        json.loads(mutated)
        expected = True
    except ValueError:
        expected = False
    assert _well_formed(mutated, 0, len(mutated)) is expected, mutated
