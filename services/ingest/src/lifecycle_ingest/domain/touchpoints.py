"""Segment-compatible touchpoint validation and normalisation. Pure: no I/O, no clock.

`normalise(raw, received_at=..., batch_context=...)` returns the wire contract
(`TouchpointData`) or raises `InvalidTouchpoint` naming every field at fault. What it accepts,
every consumer can store and apply: unstorable values (NUL, lone surrogates, NaN/Infinity,
excessive nesting), unreadable amounts and impossible times are refused here, not downstream.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from lifecycle_shared.events import CallType, TouchpointData
from lifecycle_shared.identity import is_junk_id
from lifecycle_shared.orders import MAX_AMOUNT, unreadable_amount_fields
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from lifecycle_ingest.domain.json_values import unstorable

# A source's name: it scopes messageIds in event ids (`source/messageId`), so it holds no '/'.
SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# No touchpoint predates the Unix epoch; historical imports (years of orders) are well after it.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# How the event travelled, not what it is: left out of the content digest. The times differ between a
# request and its retry; `historical` is the path's (an event sent live, then in an import, is a retry);
# `verified` is ingest's judgement of how it was sent (domain/verification.py), not what the sender described.
# In the order `touchpoint_data` adds them (a record's JSON keeps it: `publisher.to_record`).
TRANSPORT_ORDER = ("receivedAt", "timestamp", "sentAt", "historical", "verified", "messageId")
TRANSPORT_FIELDS = frozenset(TRANSPORT_ORDER)
# Ids are strings or integers (Segment's libraries send numbers as they are); never booleans.
Id = StrictStr | StrictInt
ID_FIELDS = ("userId", "anonymousId", "previousId", "groupId")
MAX_ORDER_ID_CHARS = 200  # an order id is a key in every consumer's tables


class InvalidTouchpoint(ValueError):
    """An event refused, naming every field at fault; `status` is its HTTP status (400 unless
    the event is refused for another reason, e.g. 403 when it needs a server key)."""

    def __init__(self, errors: list[dict[str, str]], *, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors
        self.status = status
        self.code = code


# Top-level fields a client may send that are never carried: a credential, and the server's own time.
NOT_CARRIED = ("writeKey", "receivedAt")


class TouchpointIn(BaseModel):
    """One touchpoint as a storefront posts it (the Segment spec's common fields).

    Liberal: fields we do not use (Segment's `category`, `channel`, `integrations`, `_metadata`,
    RudderStack's extras, anything a newer library adds) are accepted and carried on the event;
    `null` where an object or a string may be is taken as absent. Only what cannot be processed
    is refused."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    type: CallType
    event: str | None = Field(default=None, min_length=1, max_length=200)
    name: str | None = None
    category: str | None = None
    userId: Id | None = None
    anonymousId: Id | None = None
    previousId: Id | None = None
    groupId: Id | None = None
    messageId: str | None = Field(default=None, min_length=1, max_length=100)
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    # Read for authentication (analytics.js puts the write key in the body), never carried.
    writeKey: Any = None
    receivedAt: Any = None


_VALIDATE = TouchpointIn.model_validate  # bound once: the hot path calls it per event


def normalise(raw: Any, *, received_at: datetime, batch_context: dict[str, Any] | None = None,
              batch_sent_at: datetime | None = None, default_type: str | None = None,
              known_storable: bool = False, historical: bool = False) -> TouchpointData:
    """The wire contract for one raw event (see `touchpoint_data`)."""
    return TouchpointData.model_validate(touchpoint_data(
        raw, received_at=received_at, batch_context=batch_context, batch_sent_at=batch_sent_at,
        default_type=default_type, known_storable=known_storable, historical=historical))


def touchpoint_data(raw: Any, *, received_at: datetime, batch_context: dict[str, Any] | None = None,
                    batch_sent_at: datetime | None = None, default_type: str | None = None,
                    known_storable: bool = False, historical: bool = False) -> dict[str, Any]:
    """`TouchpointData`'s fields as a dict (None left out), ready to serialise: the hot path builds the
    record from it without a second validation (`tests/unit` hold it valid for `TouchpointData`).
    `known_storable`: the body it came from was checked whole (json_values.parse_checked).
    `historical`: the event came through `/v1/import`; whatever the client sent as `historical` is replaced."""
    if not known_storable and (problems := unstorable(raw)):
        raise InvalidTouchpoint(problems)
    if not isinstance(raw, dict):
        raise InvalidTouchpoint([{"field": "(body)", "message": "expected a JSON object"}])
    if default_type is not None:
        if raw.get("type", default_type) != default_type:
            raise InvalidTouchpoint([{"field": "type", "message": f"must be '{default_type}' on this endpoint"}])
        raw = {**raw, "type": default_type}
    try:
        event_in = _VALIDATE(raw)
    except ValidationError as error:
        raise InvalidTouchpoint(list({e["field"]: e for e in map(_describe, error.errors())}.values())) from None
    _drop_empty_beside_usable(event_in)
    context = {**batch_context, **event_in.context} if batch_context and event_in.context else (
        event_in.context or batch_context or {})
    _check_required(event_in, context=context)
    sent_at = _utc(event_in.sentAt or batch_sent_at)
    client_time = _utc(event_in.originalTimestamp or event_in.timestamp)
    client_field = "originalTimestamp" if event_in.originalTimestamp else "timestamp"
    # Built with only what is there (None is left out of the contract): a filter afterwards costs more.
    data: dict[str, Any] = {
        "type": event_in.type, "properties": event_in.properties or {}, "traits": event_in.traits or {},
        "context": context, "receivedAt": received_at,
        "timestamp": event_time(client_time=client_time, sent_at=sent_at, received_at=received_at,
                                client_field=client_field)}
    for name, value in (("event", event_in.event), ("name", event_in.name), ("category", event_in.category),
                        ("userId", _id(event_in.userId, "userId")),
                        ("anonymousId", _id(event_in.anonymousId, "anonymousId")),
                        ("previousId", _id(event_in.previousId, "previousId")),
                        ("groupId", None if event_in.groupId is None else str(event_in.groupId)),
                        ("originalTimestamp", client_time), ("sentAt", sent_at)):
        if value is not None:
            data[name] = value
    if event_in.model_extra:
        data.update((name, value) for name, value in event_in.model_extra.items()
                    if name not in NOT_CARRIED and value is not None)
    data["historical"] = historical  # after the client's fields: the path decides, never the client
    data["verified"] = False  # likewise: `api.accept` sets it from the key (domain/verification.py)
    data["messageId"] = event_in.messageId or generated_message_id(data)
    return data


def to_json(value: Any) -> bytes:
    """Compact JSON with times as RFC 3339 ('Z' for UTC), as pydantic writes them; integers beyond
    64 bits (orjson refuses them) through the standard library."""
    try:
        return orjson.dumps(value, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_rfc3339).encode()


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def content_digest(data: dict[str, Any]) -> str:
    """sha-256 of the event as the client described it (transport fields left out): a retry has
    the same digest, another event reusing a messageId does not."""
    return hashlib.sha256(to_json({k: v for k, v in data.items() if k not in TRANSPORT_FIELDS})).hexdigest()


def generated_message_id(data: dict[str, Any]) -> str:
    """For an event sent without a messageId: derived from its content when it carries its own
    time, so a retried request is recognised downstream; random otherwise (two identical
    untimed events are two events)."""
    if "originalTimestamp" not in data:
        return str(uuid.uuid4())
    return "content-" + content_digest(data)[:40]


def event_id(*, source: str, message_id: str, key_kind: str = "server") -> str:
    """The CloudEvent id: messageIds are unique per source only, so one storefront cannot suppress
    another's events by reusing an id; and per kind of key, so a browser holding the public write key
    cannot pre-empt an order its server will send (`web/m-1` from a server key, `web+write/m-1` from a
    write key). Source names hold neither '/' nor '+' (SOURCE_NAME)."""
    return f"{source}/{message_id}" if key_kind == "server" else f"{source}+{key_kind}/{message_id}"


def _drop_empty_beside_usable(event_in: TouchpointIn) -> None:
    """`userId: ""` beside an anonymousId (or `anonymousId: ""` beside a userId) is taken as absent:
    RudderStack's browser SDK sends `userId: ""` on every event before identify. Whitespace is stripped
    first, so "  " is empty too. An empty id on its own is still refused (`_id`), and so is any other
    placeholder ("null", "0"...): an empty string says "no id", a placeholder pretends to be one."""
    if event_in.userId == "" and event_in.anonymousId not in (None, ""):
        event_in.userId = None
    elif event_in.anonymousId == "" and event_in.userId not in (None, ""):
        event_in.anonymousId = None


def _check_required(event_in: TouchpointIn, *, context: dict[str, Any]) -> None:
    missing = []
    if event_in.userId is None and event_in.anonymousId is None:
        missing.append({"field": "userId", "message": "userId or anonymousId is required"})
    kind = event_in.type
    if kind == "track" and not event_in.event:
        missing.append({"field": "event", "message": "required for type 'track'"})
    elif kind == "alias":
        missing += [{"field": name, "message": "required for type 'alias'"}
                    for name, value in (("previousId", event_in.previousId), ("userId", event_in.userId))
                    if value is None]
    elif kind == "group" and event_in.groupId is None:
        missing.append({"field": "groupId", "message": "required for type 'group'"})
    if properties := event_in.properties:
        missing += [{"field": f"properties.{name}",
                     "message": f"expected a number (or numeric string) within ±{MAX_AMOUNT:,.0f}"}
                    for name in unreadable_amount_fields(properties)]
        missing += [{"field": f"properties.{name}", "message": f"expected a string or a number of at most "
                                                              f"{MAX_ORDER_ID_CHARS} characters"}
                    for name in ("order_id", "orderId") if not _usable_order_id(properties.get(name))]
    if context.get("traits") is not None and not isinstance(context["traits"], dict):
        missing.append({"field": "context.traits", "message": "expected an object (the person's traits)"})
    if missing:
        raise InvalidTouchpoint(missing)


def _usable_order_id(value: Any) -> bool:
    if value is None:
        return True
    scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
    return scalar and len(str(value)) <= MAX_ORDER_ID_CHARS


def corrected_timestamp(*, client_time: datetime | None, sent_at: datetime | None,
                        received_at: datetime) -> datetime:
    """Segment's skew correction: timestamp = receivedAt - (sentAt - originalTimestamp)."""
    if client_time is None:
        return received_at
    if sent_at is None:
        return client_time
    return received_at - (sent_at - client_time)


def event_time(*, client_time: datetime | None, sent_at: datetime | None, received_at: datetime,
               client_field: str = "originalTimestamp") -> datetime:
    """When the event happened: skew-corrected, never after it was received (a later time is a
    clock error), never before 1970 (refused, naming the times that lead there)."""
    for name, value in ((client_field, client_time), ("sentAt", sent_at)):
        if value is not None and value < EARLIEST:
            raise InvalidTouchpoint([{"field": name, "message": "before 1970-01-01"}])
    try:
        corrected: datetime | None = corrected_timestamp(client_time=client_time, sent_at=sent_at,
                                                         received_at=received_at)
    except OverflowError:  # past year 9999 after receipt is a clock error like any future time
        corrected = received_at if client_time and sent_at and client_time > sent_at else None
    if corrected is None or corrected < EARLIEST:
        raise InvalidTouchpoint([{"field": "sentAt", "message": f"sentAt and {client_field} are too far apart "
                                                                "to correct the clock skew"}])
    return min(corrected, received_at)


def customer_key(data: dict[str, Any]) -> str:
    return data.get("userId") or data.get("anonymousId") or ""


def _id(value: str | int | None, field: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip()  # an integer id becomes its digits
    if is_junk_id(text):  # a placeholder a client sent by mistake: accepting it would merge unrelated people
        raise InvalidTouchpoint([{"field": field, "message": f"'{text}' is not a usable id"}])
    if len(text) > 200:
        raise InvalidTouchpoint([{"field": field, "message": "longer than 200 characters"}])
    return text


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _describe(error: ErrorDetails) -> dict[str, str]:
    if error["loc"] and error["loc"][0] in ID_FIELDS:  # one message for the union, not one per member
        return {"field": error["loc"][0], "message": "expected a string or an integer"}
    field = ".".join(str(part) for part in error["loc"]) or "(body)"
    if error["type"] == "extra_forbidden":
        return {"field": field, "message": "unknown field"}
    return {"field": field, "message": error["msg"]}
