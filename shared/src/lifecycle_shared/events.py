"""Event contracts on the wire: the CloudEvents 1.0 envelope and the data of each event type.

Every Kafka record's value is one CloudEvent in structured JSON mode; its key is `subject`,
the customer key, so one customer's events stay in order on one partition.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lifecycle_shared.errors import invalid_data

TOUCHPOINT_TYPE_PREFIX = "touchpoint."
STAGE_CHANGED_TYPE = "lifecycle.stage_changed"
CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json; charset=utf-8")
# The event type, copied into a header so a consumer can skip what it does not handle undecoded.
TYPE_HEADER = "ce_type"

# Fixed namespace for ids derived from other events: a replay yields the same ids.
DERIVED_ID_NAMESPACE = uuid.UUID("6f1c3a52-4d0e-4b8a-9a53-2f7f0e7c1d11")


def derived_event_id(*parts: str) -> str:
    """A deterministic id for an event derived from others (cause ids + handler + outcome)."""
    return str(uuid.uuid5(DERIVED_ID_NAMESPACE, "|".join(parts)))


class CloudEvent(BaseModel):
    """CloudEvents 1.0 envelope; extension attributes are allowed and kept."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: datetime
    subject: str = Field(min_length=1)
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    # Extension attribute: sha-256 of the event as its sender described it (transport times left
    # out), so a consumer can tell a retry (same id, same digest) from a reused id (another digest).
    digest: str | None = Field(default=None, max_length=64, description=(
        "Extension: sha-256 (hex) of the event's content as its sender described it. The same id "
        "with another digest is a reused id, not a retry."))

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [CONTENT_TYPE_HEADER, (TYPE_HEADER, self.type.encode())]


class TouchpointData(BaseModel):
    """A storefront interaction, normalised from the Segment spec (field names kept camelCase).

    `timestamp` is the skew-corrected event time; the client's `originalTimestamp`, `sentAt`
    and the server's `receivedAt` are kept as they came.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["track", "identify", "page", "screen", "group", "alias"]
    event: str | None = None
    name: str | None = None
    userId: str | None = None
    anonymousId: str | None = None
    previousId: str | None = None
    groupId: str | None = None
    messageId: str
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    receivedAt: datetime

    def all_traits(self) -> dict[str, Any]:
        """The person's traits: `context.traits` (Segment's place for them on any call) overlaid
        with the call's own `traits` (identify). A `context.traits` that is not an object is none."""
        in_context = self.context.get("traits")
        return {**(in_context if isinstance(in_context, dict) else {}), **self.traits}


class StageChangedData(BaseModel):
    """A customer moved from one lifecycle stage to another (`from_stage` is None at first touch)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    user_id: str | None = None
    anonymous_ids: list[str] = Field(default_factory=list)
    from_stage: str | None
    to_stage: str
    reason: str
    rule_version: str
    cause_event_ids: list[str]
    event_time: datetime
    processed_at: datetime
    traits: dict[str, Any] = Field(default_factory=dict)
    orders: int = 0
    revenue: float = 0.0


DataModel = TypeVar("DataModel", bound=BaseModel)


def data_as(model: type[DataModel], event: CloudEvent) -> DataModel:
    """The event's `data` as `model`; a violation is permanent (PermanentError, no data quoted)."""
    try:
        return model.model_validate(event.data)
    except ValidationError as error:
        raise invalid_data(f"{event.type} data", error, fields=model.model_fields) from None


def touchpoint_event_type(data: TouchpointData) -> str:
    """`touchpoint.order_completed` for track "Order Completed"; `touchpoint.identify` etc."""
    if data.type == "track" and data.event:
        return TOUCHPOINT_TYPE_PREFIX + snake_name(data.event)
    if data.type in ("page", "screen"):
        return f"{TOUCHPOINT_TYPE_PREFIX}{data.type}_viewed"
    return TOUCHPOINT_TYPE_PREFIX + data.type


def snake_name(event_name: str) -> str:
    """'Order Completed' -> 'order_completed'; 'product-viewed' -> 'product_viewed'."""
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in event_name.strip())
    return "_".join(part for part in out.split("_") if part)
