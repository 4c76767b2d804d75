"""What the event endpoints take and answer, for OpenAPI (and so for clients and the fuzz suite).

The endpoints read the raw body themselves (to bound it before buffering and to answer per
item), so the request bodies are documented here from the same model that validates them.
"""

from __future__ import annotations

import copy
from typing import Any

from lifecycle_shared.http import ErrorBody
from pydantic import BaseModel, Field

from lifecycle_ingest.domain.touchpoints import TouchpointIn


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. `properties.revenue` or `batch`.")
    message: str


class Rejected(BaseModel):
    index: int = Field(description="The event's position in the batch (0 for a single event).")
    messageId: str | None
    status: int = Field(description="400 invalid, 401 another key, 403 needs a server key, 413 too large.")
    code: str
    errors: list[FieldError]


class AcceptedOut(BaseModel):
    success: bool
    messageId: str = Field(description="The client's messageId, or the one ingest assigned.")


class BatchOut(BaseModel):
    success: bool
    accepted: int
    rejected: list[Rejected] = Field(description="Always empty in a 200.")
    messageIds: list[str] = Field(description="The accepted events' messageIds, in order.")


class ErrorOut(ErrorBody):
    messageId: str | None = Field(default=None, description="A single event's messageId, when it had one.")
    accepted: int | None = Field(default=None, description="Batch: how many events were accepted and kept.")
    rejected: list[Rejected] | None = Field(default=None, description="Batch: each refused event, and why.")
    messageIds: list[str] | None = Field(default=None, description=(
        "Batch with refused events: the accepted events' ids (kept; do not resend them, or resend them "
        "unchanged: they are recognised). 503 after events were handed to the broker: the ids to retry with."))


EVENT_STATUSES = {
    400: "Invalid (`invalid_request`), naming every field at fault. In a batch: at least one event was refused "
         "(`partially_rejected` when others were accepted: `messageIds` lists those, `rejected` the others)",
    401: "Missing, unknown, expired or revoked key",
    403: "`server_key_required`: an event that moves money or points sent with a write key; "
         "`origin_not_allowed`: a browser origin the key's source does not allow",
    413: "Body, event or batch over its limit",
    429: "`rate_limited`: over the key's rate; `Retry-After` and `RateLimit-*` say when to retry",
    503: "Broker unavailable or overloaded (Retry-After): nothing was accepted. `delivery_unknown`: some may "
         "have been accepted: retry with the listed messageIds, duplicates are dropped.",
}
EVENT_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut, "description": text}
                                                for code, text in EVENT_STATUSES.items()}
MAX_BATCH_EVENTS = 2500  # Segment's limit; the default of LIFECYCLE_INGEST_MAX_BATCH_EVENTS


# What each call type requires beyond an id (Segment's spec; `normalise` enforces the same).
REQUIRED_BY_TYPE = {"track": ["event"], "alias": ["previousId", "userId"], "group": ["groupId"]}
_ID = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 200}, {"type": "integer"}]}


def _touchpoint_schema(*, event_type: str | None) -> dict[str, Any]:
    schema = copy.deepcopy(TouchpointIn.model_json_schema(by_alias=True))
    for name in ("userId", "anonymousId", "previousId", "groupId"):
        schema["properties"][name] = {**_ID, "description": "A string or an integer; not a placeholder such as "
                                                             "'null', 'anonymous' or '0'."}
    schema["anyOf"] = [{"required": ["userId"]}, {"required": ["anonymousId"]}]
    if event_type is None:
        schema["allOf"] = [{"if": {"properties": {"type": {"const": kind}}},
                            "then": {"required": required}} for kind, required in REQUIRED_BY_TYPE.items()]
    else:  # the path gives the type: optional in the body, and only this one
        schema["required"] = [name for name in schema.get("required", []) if name != "type"]
        schema["required"] += REQUIRED_BY_TYPE.get(event_type, [])
        schema["properties"]["type"] = {"type": "string", "enum": [event_type]}
    return schema


def touchpoint_body(event_type: str | None) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": _touchpoint_schema(event_type=event_type)}}}}


def batch_body() -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH_EVENTS,
                      "items": _touchpoint_schema(event_type=None)},
            "sentAt": {"type": "string", "format": "date-time"},
            "context": {"type": "object"},
            "writeKey": {"type": "string"},
            "integrations": {"type": "object"},
            "_metadata": {"type": "object"},
            "metadata": {"type": "object"},
        },
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
