"""The import CLI's own rules: CSV columns to Segment calls, stable messageIds, batches within ingest's limits."""

from __future__ import annotations

import json

import pytest
from lifecycle_ingest.domain.imports import (
    InvalidColumns,
    UnreadableLine,
    cell_value,
    content_message_id,
    csv_columns,
    csv_event,
    json_event,
    prepared,
)
from lifecycle_ingest.importer import (
    EMPTY_BATCH,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    Line,
    batches,
    file_format_of,
    read_lines,
)
from lifecycle_ingest.settings import IngestSettings

HEADER = ["type", "event", "userId", "anonymousId", "messageId", "timestamp", "properties.revenue",
          "properties.order_id", "traits.plan", "traits.zip"]


def row(header: list[str], **cells: str) -> dict:
    return csv_event(csv_columns(header), [cells.get(name.replace(".", "__"), "") for name in header])


def test_a_csv_row_becomes_a_segment_call_with_properties_and_traits_as_objects():
    event = row(HEADER, type="track", event="Order Completed", userId="42", messageId="m-1",
                timestamp="2019-03-01T10:00:00Z", properties__revenue="19.90", properties__order_id="1001",
                traits__plan="gold", traits__zip="01234")
    assert event == {"type": "track", "event": "Order Completed", "userId": "42", "messageId": "m-1",
                     "timestamp": "2019-03-01T10:00:00Z", "properties": {"revenue": 19.9, "order_id": 1001},
                     "traits": {"plan": "gold", "zip": "01234"}}


def test_empty_cells_are_absent_fields_and_top_level_fields_stay_text():
    event = row(HEADER, type="identify", userId="007", traits__plan="gold")
    assert event == {"type": "identify", "userId": "007", "traits": {"plan": "gold"}}
    assert "properties" not in event and "anonymousId" not in event


def test_other_top_level_columns_are_carried_and_a_dotted_name_is_one_key():
    event = row(["type", "channel", "properties.shipping.city"], type="page", channel="server",
                properties__shipping__city="Berlin")
    assert event == {"type": "page", "channel": "server", "properties": {"shipping.city": "Berlin"}}


@pytest.mark.parametrize(("text", "value"), [
    ("42", 42), ("-3", -3), ("0", 0), ("19.90", 19.9), ("-0.5", -0.5), ("12345678901234567890", 12345678901234567890),
    ("007", "007"), ("1e5", "1e5"), ("+49301234", "+49301234"), ("1,5", "1,5"), ("4.", "4."), (".5", ".5"),
    ("NaN", "NaN"), ("Infinity", "Infinity"), (" 42", " 42"), ("true", "true"), ("0x1F", "0x1F"),
])
def test_property_values_that_read_as_plain_decimal_numbers_are_numbers(text, value):
    assert cell_value(text) == value and type(cell_value(text)) is type(value)


@pytest.mark.parametrize(("header", "message"), [
    (["type", ""], "column 2: empty name"),
    (["type", "properties."], "column 2: empty name"),
    (["type", "context.ip"], "column 2 (context.ip): only properties.<name> and traits.<name> nest"),
    (["type", "userId", " userId"], "column 3 (userId): repeated"),
])
def test_a_header_that_cannot_be_mapped_is_refused_naming_the_column(header, message):
    with pytest.raises(InvalidColumns, match=message.replace("(", r"\(").replace(")", r"\)")):
        csv_columns(header)


def test_a_row_with_more_cells_than_columns_is_unreadable_and_fewer_is_fine():
    columns = csv_columns(["type", "userId"])
    with pytest.raises(UnreadableLine) as caught:
        csv_event(columns, ["track", "u", "surplus"])
    assert caught.value.code == "invalid_csv" and "surplus" not in str(caught.value)
    assert csv_event(columns, ["identify"]) == {"type": "identify"}


@pytest.mark.parametrize(("text", "reason"), [
    ("{nope", "not valid JSON"), ("[1, 2]", "not a JSON object"), ('{"p": NaN}', "not valid JSON"),
    ('"ann@example.com"', "not a JSON object"),
])
def test_an_ndjson_line_must_be_a_json_object(text, reason):
    with pytest.raises(UnreadableLine, match=reason) as caught:
        json_event(text)
    assert caught.value.code == "invalid_json" and "ann" not in str(caught.value)


def test_a_call_without_message_id_gets_one_from_its_content_whatever_the_key_order_or_format():
    from_json = prepared(json_event('{"type": "track", "event": "X", "userId": "u", "properties": {"revenue": 42}}'))
    from_csv = prepared(row(["userId", "properties.revenue", "event", "type"], userId="u", properties__revenue="42",
                            event="X", type="track"))
    assert from_json["messageId"] == from_csv["messageId"] == content_message_id(from_json)
    assert from_json["messageId"].startswith("import-") and len(from_json["messageId"]) == 47
    other = prepared({"type": "track", "event": "X", "userId": "u", "properties": {"revenue": 43}})
    assert other["messageId"] != from_json["messageId"]
    assert prepared({"type": "track", "messageId": "m-7"})["messageId"] == "m-7"
    assert prepared({"type": "track", "messageId": ""})["messageId"].startswith("import-")


def test_the_original_deliverys_times_are_left_out_so_the_event_keeps_its_own_time():
    call = prepared({"type": "track", "messageId": "m", "originalTimestamp": "2019-03-01T10:00:00Z",
                     "sentAt": "2019-03-01T10:00:05Z", "receivedAt": "2019-03-01T10:00:06Z"})
    assert call == {"type": "track", "messageId": "m", "originalTimestamp": "2019-03-01T10:00:00Z"}
    with_sent_at = prepared({"type": "track", "timestamp": "2019-03-01T10:00:00Z", "sentAt": "2019-03-01T10:00:05Z"})
    assert with_sent_at["messageId"] == prepared({"type": "track", "timestamp": "2019-03-01T10:00:00Z"})["messageId"]


def test_the_importers_limits_are_ingests():
    defaults = IngestSettings.model_fields
    assert (MAX_BATCH_EVENTS, MAX_BATCH_BYTES, MAX_EVENT_BYTES) == (
        defaults["max_batch_events"].default, defaults["max_batch_bytes"].default, defaults["max_record_bytes"].default)


def test_batches_hold_at_most_the_events_and_bytes_ingest_takes_and_pass_unreadable_lines_on():
    lines = [Line(n, b'{"n":%d}' % n) for n in range(1, 8)]
    bad = Line(4, code="invalid_json", reason="not valid JSON")
    out = list(batches([*lines[:3], bad, *lines[3:]], max_events=3))
    assert out == [bad, lines[:3], lines[3:6], lines[6:]]
    sized = list(batches(lines, max_events=10, max_bytes=EMPTY_BATCH + 2 * 7 + 1))  # two 7-byte items and a comma
    assert [len(batch) for batch in sized] == [2, 2, 2, 1]
    for batch in sized:
        assert len(b'{"batch":[' + b",".join(line.body for line in batch) + b"]}") <= EMPTY_BATCH + 15


def test_csv_rows_are_numbered_by_the_line_they_start_on(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text('\ufefftype,userId,properties.note\ntrack,u1,"two\nlines"\n\ntrack,u2,x,surplus\nidentify,u3,\n',
                    encoding="utf-8")
    lines = list(read_lines(path, "csv"))
    assert [(line.number, line.code) for line in lines] == [(2, None), (5, "invalid_csv"), (6, None)]
    first = json.loads(lines[0].body)
    assert first["properties"] == {"note": "two\nlines"} and first["messageId"].startswith("import-")


def test_ndjson_lines_are_numbered_blank_lines_skipped_and_oversize_refused_unsent(tmp_path):
    path = tmp_path / "calls.ndjson"
    big = json.dumps({"type": "track", "event": "X", "userId": "u", "properties": {"blob": "x" * MAX_EVENT_BYTES}})
    path.write_text('{"type": "page", "anonymousId": "a"}\n\n{oops\n' + big + "\n", encoding="utf-8")
    assert [(line.number, line.code) for line in read_lines(path, "ndjson")] == [
        (1, None), (3, "invalid_json"), (4, "payload_too_large")]


@pytest.mark.parametrize(("name", "file_format"), [("a.ndjson", "ndjson"), ("a.JSONL", "ndjson"), ("a.csv", "csv"),
                                                   ("a.json", None), ("a", None)])
def test_the_format_follows_the_extension(name, file_format, tmp_path):
    assert file_format_of(tmp_path / name) == file_format
