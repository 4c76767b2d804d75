"""How a line of an import file becomes the Segment call `lifecycle_ingest.importer` posts. Pure: no I/O.

CSV columns: a plain name (`type`, `event`, `userId`, `anonymousId`, `messageId`, `timestamp`, or any
other top-level field) is that field, as text; `properties.<name>` and `traits.<name>` are one key of
that object, `<name>` taken as written (dots included: no deeper nesting). An empty cell is an absent
field. A property or trait that reads as a plain decimal number (`42`, `-3`, `19.90`) is sent as a
number; anything else (`007`, `1e5`, `+49 30 1234`) stays text.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

NESTED = ("properties", "traits")
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
# The original delivery's times: a historical `sentAt` would make ingest correct the event's time against
# today's receipt (moving years-old events to now); `receivedAt` is never carried anyway.
DELIVERY_FIELDS = ("sentAt", "receivedAt")
MESSAGE_ID_PREFIX = "import-"


class UnreadableLine(ValueError):
    """A line that cannot become a call: refused by the importer, never sent. `code` as ingest names its refusals."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class InvalidColumns(ValueError):
    """A CSV header the importer cannot map (the file is not imported)."""


def csv_columns(header: list[str]) -> list[tuple[str, str | None]]:
    """Each column as (field, key): ("userId", None) for a top-level field, ("properties", "revenue") for
    `properties.revenue`. Empty, repeated and unknown dotted names are refused, naming the column."""
    columns: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        name = name.strip()
        field, dot, key = name.partition(".")
        if not name or (dot and not key):
            raise InvalidColumns(f"column {position}: empty name")
        if dot and field not in NESTED:
            raise InvalidColumns(f"column {position} ({name}): only properties.<name> and traits.<name> nest")
        if name in seen:
            raise InvalidColumns(f"column {position} ({name}): repeated")
        seen.add(name)
        columns.append((field, key if dot else None))
    return columns


def csv_event(columns: list[tuple[str, str | None]], cells: list[str]) -> dict[str, Any]:
    """A row as a Segment call (see the module's docstring for the mapping)."""
    if len(cells) > len(columns):
        raise UnreadableLine("invalid_csv", f"{len(cells)} cells for {len(columns)} columns")
    event: dict[str, Any] = {}
    for (field, key), text in zip(columns, cells, strict=False):
        if text == "":
            continue
        if key is None:
            event[field] = text
        else:
            event.setdefault(field, {})[key] = cell_value(text)
    return event


def cell_value(text: str) -> str | int | float:
    """A property's or trait's value: a plain decimal number as a number, anything else as written."""
    if not NUMBER.fullmatch(text):
        return text
    return float(text) if "." in text else int(text)


def json_event(text: str) -> dict[str, Any]:
    """An NDJSON line as a call: a JSON object (NaN and Infinity are not JSON)."""
    try:
        event = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise UnreadableLine("invalid_json", "not valid JSON") from None
    if not isinstance(event, dict):
        raise UnreadableLine("invalid_json", "not a JSON object")
    return event


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def prepared(event: dict[str, Any]) -> dict[str, Any]:
    """The call as it is sent: the original delivery's times left out, and a messageId derived from its
    content when it has none, so that importing the same file again is recognised as a retry."""
    call = {name: value for name, value in event.items() if name not in DELIVERY_FIELDS}
    if call.get("messageId") in (None, ""):
        call["messageId"] = content_message_id(call)
    return call


def content_message_id(event: dict[str, Any]) -> str:
    """`import-` and 40 hex digits of the sha-256 of the call (messageId left out, keys sorted): the
    same content in any file, NDJSON or CSV, has the same id."""
    content = {name: value for name, value in event.items() if name != "messageId"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return MESSAGE_ID_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def encoded(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; a lone surrogate (undecodable input) escaped, for ingest to refuse naming it."""
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(event, separators=(",", ":")).encode()
