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
    index: int
    messageId: str | None
    errors: list[FieldError]


class AcceptedOut(BaseModel):
    success: bool
    messageId: str = Field(description="The client's messageId, or the one ingest assigned.")


class BatchOut(BaseModel):
    success: bool
    accepted: int
    rejected: list[Rejected]
    messageIds: list[str] = Field(description="The accepted events' messageIds, in order.")


class ErrorOut(ErrorBody):
    accepted: int | None = None
    rejected: list[Rejected] | None = None
    messageIds: list[str] | None = Field(
        default=None, description="503 after events were handed to the broker: the ids to retry with.")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {400: "Invalid: names every field at fault", 401: "Missing, unknown or revoked key",
                 413: "Body, event or batch over its limit",
                 503: "Broker unavailable or overloaded (Retry-After). After a timeout some events may "
                      "have been accepted: retry with the listed messageIds, duplicates are dropped."}
    return {code: {"model": ErrorOut, "description": described[code]} for code in codes}


EVENT_ERRORS = _errors(400, 401, 413, 503)


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


def batch_body(*, max_events: int) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["batch"],
        "additionalProperties": False,
        "properties": {
            "batch": {"type": "array", "minItems": 1, "maxItems": max_events,
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
