"""The stage engine writes each statement's rows as one JSON document: orjson on the hot path, the
standard library for what orjson refuses - the same text PostgreSQL reads either way."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from lifecycle_stage_engine.db.repository import json_text

WHEN = datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC)


def test_times_are_rfc_3339_instants_and_tuples_are_arrays():
    text = json_text([("e1", WHEN, {"a": 1}, True), ("e2", WHEN.astimezone(timezone(timedelta(hours=7))), {}, False)])
    rows = json.loads(text)
    assert [datetime.fromisoformat(row[1]) for row in rows] == [WHEN, WHEN]
    assert rows[0][2:] == [{"a": 1}, True]


def test_integers_beyond_64_bits_take_the_standard_library_and_keep_every_digit():
    huge = 2**70 + 1
    rows = json.loads(json_text([("e1", WHEN, {"quantity": huge, "nested": [huge]})]))
    assert rows[0][2] == {"quantity": huge, "nested": [huge]}
    assert datetime.fromisoformat(rows[0][1]) == WHEN
