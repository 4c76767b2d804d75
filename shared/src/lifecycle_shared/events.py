"""Event contracts on the wire: the CloudEvents 1.0 envelope and the data of each event type.

Every Kafka record's value is one CloudEvent in structured JSON mode; its key is `subject`,
the customer key, so one customer's events stay in order on one partition.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TOUCHPOINT_TYPE_PREFIX = "touchpoint."
STAGE_CHANGED_TYPE = "lifecycle.stage_changed"
HISTORY_CORRECTED_TYPE = "lifecycle.history_corrected"
IDENTITY_MERGED_TYPE = "identity.merged"
# GDPR erasure (docs/erasure.md), on stage-transitions.v1, keyed by the erasure id (never a customer key).
ERASURE_REQUESTED_TYPE = "customer.erasure_requested"
# loyalty-events.v1: what loyalty tells others (messaging's campaigns, webhooks).
REWARD_REDEEMED_TYPE = "loyalty.reward_redeemed"
DEBT_RECORDED_TYPE = "loyalty.debt_recorded"
TIER_CHANGED_TYPE = "loyalty.tier_changed"
POINTS_EXPIRING_TYPE = "loyalty.points_expiring"
CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json; charset=utf-8")
# The event type, copied into a header so a consumer can skip what it does not handle undecoded. Never
# `ce_`-prefixed: in the CloudEvents Kafka binding a `ce_` header means binary mode, and SDKs would read our
# structured records as binary ones and fail.
TYPE_HEADER = "lifecycle-event-type"
# Where records written before the rename carry the type (they stay on the topics); consumers still honour it.
LEGACY_TYPE_HEADER = "ce_type"
# W3C trace context (https://www.w3.org/TR/trace-context/): set when the request that caused the event had one.
TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
# version-traceid-parentid-flags, lowercase hex (version ff and all-zero ids are refused apart).
TRACEPARENT_PATTERN = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
MAX_TRACESTATE_BYTES = 512

# Fixed namespace for ids derived from other events: a replay yields the same ids.
DERIVED_ID_NAMESPACE = uuid.UUID("6f1c3a52-4d0e-4b8a-9a53-2f7f0e7c1d11")


def derived_event_id(*parts: str) -> str:
    """A deterministic id for an event derived from others (cause ids + handler + outcome): the name-based
    (SHA-1, version 5) UUID of the joined parts in DERIVED_ID_NAMESPACE - `uuid.uuid5`'s value, built without
    its UUID object (this runs for every transition)."""
    digest = bytearray(hashlib.sha1(_DERIVED_ID_PREFIX + "|".join(parts).encode()).digest()[:16])
    digest[6] = digest[6] & 0x0F | 0x50  # version 5
    digest[8] = digest[8] & 0x3F | 0x80  # RFC 4122 variant
    hexed = digest.hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


_DERIVED_ID_PREFIX = DERIVED_ID_NAMESPACE.bytes


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
        """The record's value: the attributes that are set (None ones left out), `data` whole (a dict's nulls
        are kept: `exclude_none` does not reach into a dict)."""
        return self.model_dump_json(exclude_none=True).encode()

    def kafka_headers(self, *, traceparent: str | None = None, tracestate: str | None = None
                      ) -> list[tuple[str, bytes]]:
        """The record's headers: content type, event type and the cause's trace context, if valid."""
        return kafka_headers(self.type, traceparent=traceparent, tracestate=tracestate)


def kafka_headers(event_type: str, *, traceparent: str | None = None, tracestate: str | None = None
                  ) -> list[tuple[str, bytes]]:
    """The headers of a record carrying an event of `event_type` (see the AsyncAPI document)."""
    return [CONTENT_TYPE_HEADER, (TYPE_HEADER, event_type.encode()), *trace_headers(traceparent, tracestate)]


def trace_headers(traceparent: str | None, tracestate: str | None = None) -> list[tuple[str, bytes]]:
    """W3C trace context headers to copy onto a record: none unless `traceparent` is valid; `tracestate`
    only with it, and only when not empty and at most 512 bytes."""
    if traceparent is None or not valid_traceparent(traceparent):
        return []
    headers = [(TRACEPARENT_HEADER, traceparent.encode())]
    if tracestate and tracestate.isascii() and len(tracestate) <= MAX_TRACESTATE_BYTES:
        headers.append((TRACESTATE_HEADER, tracestate.encode()))
    return headers


def valid_traceparent(value: str) -> bool:
    """A W3C `traceparent`: four fields, a version other than ff, a non-zero trace id and parent id. Anything
    else is dropped, as the W3C recommendation says (a malformed one starts no trace, not a broken one)."""
    if not re.fullmatch(TRACEPARENT_PATTERN, value):
        return False
    version, trace_id, parent_id, _ = value.split("-")
    return version != "ff" and trace_id != "0" * 32 and parent_id != "0" * 16


def event_type_header(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """The event type a record's headers name: the routing header, else (records written before its
    rename) the legacy `ce_type` one; None when neither is there."""
    legacy = None
    for name, value in headers or ():
        if name == TYPE_HEADER:
            return value.decode(errors="replace")
        if name == LEGACY_TYPE_HEADER and legacy is None:
            legacy = value.decode(errors="replace")
    return legacy


# Segment's call types (the spec's and every library's).
CallType = Literal["track", "identify", "page", "screen", "group", "alias"]


class TouchpointData(BaseModel):
    """A storefront interaction, normalised from the Segment spec (field names kept camelCase).

    `timestamp` is the skew-corrected event time; the client's `originalTimestamp`, `sentAt`
    and the server's `receivedAt` are kept as they came. Fields the client sent that are not
    declared here (Segment's `channel`, `integrations`, `_metadata`...) are carried as they came.
    """

    model_config = ConfigDict(extra="allow")

    type: CallType
    event: str | None = None
    name: str | None = None
    category: str | None = None
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
    # Set by ingest, never by the client: the event came through `/v1/import` (Segment's path for
    # historical data). What it causes is recorded, and nobody is messaged about it.
    historical: bool = False
    # Set by ingest, never by the client (README "What a browser may establish").
    verified: bool = Field(default=False, description=(
        "Set by ingest, never taken from the client: the event's identity is established - it was sent with a "
        "server key, or with a write key and a valid identity-verification hash (`context.userHash`, HMAC-SHA256 "
        "of the userId with the source's secret; ingest does not carry the hash). Only verified events move "
        "points or replace a known customer's contact address. A record without the field (written before it "
        "existed) is judged by its id: `source/messageId` (a server key's) is verified, "
        "`source+write/messageId` (a write key's) is not."))

    def all_traits(self) -> dict[str, Any]:
        """The person's traits: `context.traits` (Segment's place for them on any call) overlaid
        with the call's own `traits` - except on `group`, whose traits describe the group (a
        company's name is not the person's). A `context.traits` that is not an object is none."""
        in_context = self.context.get("traits")
        own = {} if self.type == "group" else self.traits
        return {**(in_context if isinstance(in_context, dict) else {}), **own}


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
    # Caused by historical data only (an import): a fact to record, not a moment to message anyone.
    historical: bool = False
    verified: bool = Field(default=False, description=(
        "Its cause was a verified touchpoint (`TouchpointData.verified`); a move caused by time or by the purchase "
        "model is verified when the order it counts from was. Points are paid only for verified moves. Absent "
        "(records written before the field existed): not verified."))


class TransitionRecord(BaseModel):
    """One transition of a customer's stored history, as it is stored: what the profile API serves
    (`GET /v1/customers/{id}/transitions`) and what `lifecycle.history_corrected` adds to a history."""

    model_config = ConfigDict(extra="forbid")

    id: str
    from_stage: str | None
    to_stage: str
    reason: str
    rule_version: str
    cause_event_ids: list[str]
    event_time: datetime
    processed_at: datetime  # when the stage engine stored it
    # Caused by historical data only (an import): a fact to record, not a moment to message anyone.
    historical: bool


class HistoryCorrectedData(BaseModel):
    """A customer's stored stage history was recomputed (a late event, a merge, a replay with other
    rules): `superseded` transitions are no longer part of it, `added` ones now are. Transitions
    already announced by `lifecycle.stage_changed` stay facts; this event tells history readers
    (funnels, time in stage) what changed, and is never a reason to message anyone."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    stage: str | None
    superseded: list[str]
    added: list[TransitionRecord]
    processed_at: datetime


class IdentityMergedData(BaseModel):
    """Ids that belonged to another customer key now belong to `survivor_id` (the customer's key:
    their userId once known). Sent when an anonymous profile is merged into another, and when an
    anonymous customer identifies (their key changes from the anonymousId to the userId), and when an
    anonymousId first joins a customer keyed otherwise (a known customer's new device). Services
    that keep per-customer state move what they keep under `absorbed_ids` to `survivor_id`."""

    model_config = ConfigDict(extra="forbid")

    survivor_id: str
    absorbed_id: str  # the customer key the absorbed profile had
    absorbed_ids: list[str]  # every id (anonymousIds, that key) that now resolves to survivor_id
    user_id: str | None = None
    reason: str  # identify | alias (a merge or a key change) | link (a new device of a known customer)
    cause_event_ids: list[str]
    event_time: datetime
    processed_at: datetime


class ErasureRequestedData(BaseModel):
    """A customer is to be erased everywhere (`customer.erasure_requested`, docs/erasure.md). Carries no personal
    data: the customer's ids (userId, anonymousIds, past customer keys) only as keyed hashes,
    HMAC-SHA256 under the deployment's erasure pepper, lowercase hex. Each service erases the rows whose customer
    key hashes to one of them and records its counts under `erasure_id`. Applying it twice changes nothing."""

    model_config = ConfigDict(extra="forbid")

    erasure_id: str  # also the event's subject and record key
    id_hashes: list[str] = Field(min_length=1)
    hash_algorithm: Literal["hmac-sha256"] = "hmac-sha256"
    requested_at: datetime


class RewardRedeemedData(BaseModel):
    """A customer redeemed a reward with points (`loyalty.reward_redeemed`)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    redemption_id: str
    reward_id: str
    reward_kind: str  # discount_code | free_shipping | free_product | early_access
    cost: int  # points spent
    redeemed_at: datetime


class DebtRecordedData(BaseModel):
    """Points an order gave were taken back (a refund) after the customer had spent them: the shortfall is
    owed, settled from the customer's next credits (`loyalty.debt_recorded`)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    order_id: str | None
    points: int  # the debt this added
    cause_event_id: str  # the refund (or merge) that took the points back
    recorded_at: datetime


class TierChangedData(BaseModel):
    """A customer reached a higher tier, or lost one after its grace period (`loyalty.tier_changed`)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    from_tier: str
    to_tier: str
    direction: Literal["reached", "lost"]
    points_in_window: int
    rule_version: str
    changed_at: datetime


class PointsExpiringData(BaseModel):
    """Points a customer holds will expire soon (`loyalty.points_expiring`): sent once per batch of lots,
    the rule set's `expiry.warn_days` ahead."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    points: int  # what the lots below still hold
    expires_at: datetime  # the earliest of their expiries
    lot_ids: list[str]
    warned_at: datetime


def sent_with_server_key(touchpoint_event_id: str) -> bool:
    """Whether a touchpoint's event id has the form ingest gives events sent with a server key: `source/messageId`
    (a write key's are `source+write/messageId`; source names hold neither '/' nor '+')."""
    source, slash, _ = touchpoint_event_id.partition("/")
    return bool(slash) and "+" not in source


def touchpoint_event_type(data: TouchpointData) -> str:
    """`touchpoint.order_completed` for track "Order Completed"; `touchpoint.identify` etc."""
    return touchpoint_type(data.type, data.event)


def touchpoint_type(call_type: str, event: str | None) -> str:
    """The event type of a Segment call: its `type`, and for `track` the `event` name."""
    if call_type == "track" and event:
        return TOUCHPOINT_TYPE_PREFIX + snake_name(event)
    if call_type in ("page", "screen"):
        return f"{TOUCHPOINT_TYPE_PREFIX}{call_type}_viewed"
    return TOUCHPOINT_TYPE_PREFIX + call_type


@functools.lru_cache(maxsize=4096)  # a shop sends a few dozen event names, on every event
def snake_name(event_name: str) -> str:
    """'Order Completed' -> 'order_completed'; 'product-viewed' -> 'product_viewed'."""
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in event_name.strip())
    return "_".join(part for part in out.split("_") if part)
