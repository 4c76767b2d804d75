"""Segment-compatible touchpoint validation and normalisation. Pure: no I/O, no clock.

`normalise(raw, received_at=..., batch_context=...)` returns the wire contract
(`TouchpointData`) or raises `InvalidTouchpoint` naming every field at fault. What it accepts,
every consumer can store and apply: unstorable values (NUL, lone surrogates, NaN/Infinity,
excessive nesting), unreadable amounts and impossible times are refused here, not downstream.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.orders import MAX_AMOUNT, unreadable_amount_fields
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from lifecycle_ingest.domain.json_values import unstorable

# A source's name: it scopes messageIds in event ids (`source/messageId`), so it holds no '/'.
SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# Ids that clients send by mistake; accepting them would merge unrelated people.
BLOCKED_IDS = frozenset({"", "null", "undefined", "none", "nil", "anonymous", "0", "-1", "unknown"})
# No touchpoint predates the Unix epoch; historical imports (years of orders) are well after it.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# Fields that differ between a request and its retry: left out of the content digest.
TRANSPORT_FIELDS = frozenset({"messageId", "receivedAt", "sentAt", "timestamp"})
# Ids are strings or integers (Segment's libraries send numbers as they are); never booleans.
Id = StrictStr | StrictInt
ID_FIELDS = ("userId", "anonymousId", "previousId", "groupId")
MAX_ORDER_ID_CHARS = 200  # an order id is a key in every consumer's tables


class InvalidTouchpoint(ValueError):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class TouchpointIn(BaseModel):
    """One touchpoint as a storefront posts it (the Segment spec's common fields)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: Literal["track", "identify", "page", "screen", "group", "alias"]
    event: str | None = Field(default=None, min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    userId: Id | None = None
    anonymousId: Id | None = None
    previousId: Id | None = None
    groupId: Id | None = None
    messageId: str | None = Field(default=None, min_length=1, max_length=100)
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    # Sent by Segment's client libraries; accepted and not used.
    integrations: dict[str, Any] | None = None
    writeKey: str | None = None
    channel: str | None = None
    version: int | str | None = None
    receivedAt: datetime | None = None
    options: dict[str, Any] | None = None
    metadata_: dict[str, Any] | None = Field(default=None, alias="_metadata")


def normalise(raw: Any, *, received_at: datetime, batch_context: dict[str, Any] | None = None,
              batch_sent_at: datetime | None = None, default_type: str | None = None) -> TouchpointData:
    if problems := unstorable(raw):
        raise InvalidTouchpoint(problems)
    if not isinstance(raw, dict):
        raise InvalidTouchpoint([{"field": "(body)", "message": "expected a JSON object"}])
    if default_type is not None:
        if raw.get("type", default_type) != default_type:
            raise InvalidTouchpoint([{"field": "type", "message": f"must be '{default_type}' on this endpoint"}])
        raw = {**raw, "type": default_type}
    try:
        event_in = TouchpointIn.model_validate(raw)
    except ValidationError as error:
        raise InvalidTouchpoint(list({e["field"]: e for e in map(_describe, error.errors())}.values())) from None
    context = {**(batch_context or {}), **event_in.context}
    _check_required(event_in, context=context)
    user_id, anonymous_id = _id(event_in.userId, "userId"), _id(event_in.anonymousId, "anonymousId")
    sent_at = _utc(event_in.sentAt or batch_sent_at)
    client_time = _utc(event_in.originalTimestamp or event_in.timestamp)
    client_field = "originalTimestamp" if event_in.originalTimestamp else "timestamp"
    touchpoint = TouchpointData(
        type=event_in.type,
        event=event_in.event,
        name=event_in.name,
        userId=user_id,
        anonymousId=anonymous_id,
        previousId=_id(event_in.previousId, "previousId"),
        groupId=None if event_in.groupId is None else str(event_in.groupId),
        messageId=event_in.messageId or "",
        properties=event_in.properties,
        traits=event_in.traits,
        context=context,
        timestamp=event_time(client_time=client_time, sent_at=sent_at, received_at=received_at,
                             client_field=client_field),
        originalTimestamp=client_time,
        sentAt=sent_at,
        receivedAt=received_at,
    )
    if not touchpoint.messageId:
        touchpoint.messageId = generated_message_id(touchpoint)
    return touchpoint


def content_digest(touchpoint: TouchpointData) -> str:
    """sha-256 of the event as the client described it (transport fields left out): a retry has
    the same digest, another event reusing a messageId does not."""
    content = touchpoint.__pydantic_serializer__.to_json(touchpoint, exclude=TRANSPORT_FIELDS, exclude_none=True)
    return hashlib.sha256(content).hexdigest()


def generated_message_id(touchpoint: TouchpointData) -> str:
    """For an event sent without a messageId: derived from its content when it carries its own
    time, so a retried request is recognised downstream; random otherwise (two identical
    untimed events are two events)."""
    if touchpoint.originalTimestamp is None:
        return str(uuid.uuid4())
    return "content-" + content_digest(touchpoint)[:40]


def event_id(*, source: str, message_id: str) -> str:
    """The CloudEvent id: messageIds are unique per source only, so one storefront cannot
    suppress another's events by reusing an id. Source names hold no '/' (SOURCE_NAME)."""
    return f"{source}/{message_id}"


def _check_required(event_in: TouchpointIn, *, context: dict[str, Any]) -> None:
    missing = []
    if event_in.userId is None and event_in.anonymousId is None:
        missing.append({"field": "userId", "message": "userId or anonymousId is required"})
    if event_in.type == "track" and not event_in.event:
        missing.append({"field": "event", "message": "required for type 'track'"})
    if event_in.type == "alias" and event_in.previousId is None:
        missing.append({"field": "previousId", "message": "required for type 'alias'"})
    if event_in.type == "alias" and event_in.userId is None:
        missing.append({"field": "userId", "message": "required for type 'alias'"})
    if event_in.type == "group" and event_in.groupId is None:
        missing.append({"field": "groupId", "message": "required for type 'group'"})
    missing += [{"field": f"properties.{name}",
                 "message": f"expected a number (or numeric string) within ±{MAX_AMOUNT:,.0f}"}
                for name in unreadable_amount_fields(event_in.properties)]
    missing += [{"field": f"properties.{name}", "message": f"expected a string or a number of at most "
                                                          f"{MAX_ORDER_ID_CHARS} characters"}
                for name in ("order_id", "orderId") if not _usable_order_id(event_in.properties.get(name))]
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
        corrected = corrected_timestamp(client_time=client_time, sent_at=sent_at, received_at=received_at)
    except OverflowError:  # past year 9999 after receipt is a clock error like any future time
        corrected = received_at if client_time and sent_at and client_time > sent_at else None
    if corrected is None or corrected < EARLIEST:
        raise InvalidTouchpoint([{"field": "sentAt", "message": f"sentAt and {client_field} are too far apart "
                                                                "to correct the clock skew"}])
    return min(corrected, received_at)


def customer_key(touchpoint: TouchpointData) -> str:
    return touchpoint.userId or touchpoint.anonymousId or ""


def _id(value: str | int | None, field: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip()  # an integer id becomes its digits
    if text.lower() in BLOCKED_IDS:
        raise InvalidTouchpoint([{"field": field, "message": f"'{text}' is not a usable id"}])
    if len(text) > 200:
        raise InvalidTouchpoint([{"field": field, "message": "longer than 200 characters"}])
    return text


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _describe(error: dict[str, Any]) -> dict[str, str]:
    if error["loc"] and error["loc"][0] in ID_FIELDS:  # one message for the union, not one per member
        return {"field": error["loc"][0], "message": "expected a string or an integer"}
    field = ".".join(str(part) for part in error["loc"]) or "(body)"
    if error["type"] == "extra_forbidden":
        return {"field": field, "message": "unknown field"}
    return {"field": field, "message": error["msg"]}
