"""The AsyncAPI 3.0 document of every topic, generated from the pydantic contracts.

    python -m lifecycle_shared.asyncapi > docs/asyncapi.json

A test keeps the committed document equal to what the contracts generate; an end-to-end test
checks every record the running services write against it (tests/e2e/test_topic_contracts.py).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from lifecycle_shared.events import (
    CONTENT_TYPE_HEADER,
    DEBT_RECORDED_TYPE,
    ERASURE_REQUESTED_TYPE,
    HISTORY_CORRECTED_TYPE,
    IDENTITY_MERGED_TYPE,
    LEGACY_TYPE_HEADER,
    MAX_TRACESTATE_BYTES,
    POINTS_EXPIRING_TYPE,
    REWARD_REDEEMED_TYPE,
    STAGE_CHANGED_TYPE,
    TIER_CHANGED_TYPE,
    TRACEPARENT_HEADER,
    TRACEPARENT_PATTERN,
    TRACESTATE_HEADER,
    TYPE_HEADER,
    CloudEvent,
    DebtRecordedData,
    ErasureRequestedData,
    HistoryCorrectedData,
    IdentityMergedData,
    PointsExpiringData,
    RewardRedeemedData,
    StageChangedData,
    TierChangedData,
    TouchpointData,
)
from lifecycle_shared.sealing import ALGORITHM, SEALED_ATTRIBUTE
from lifecycle_shared.topics import DLQ_SUFFIX, LOYALTY_EVENTS, SENTINEL_PREFIX, STAGE_TRANSITIONS, TOUCHPOINTS

KAFKA_BINDING_VERSION = "0.5.0"
CONTENT_TYPE = CONTENT_TYPE_HEADER[1].decode()
# Kafka header names are case-sensitive, but CloudEvents SDKs match the `ce_` prefix in any case.
NOT_BINARY_MODE = {"not": {"pattern": "^[cC][eE]_"}}

TRACEPARENT_DESCRIPTION = (
    "Optional. W3C trace context (https://www.w3.org/TR/trace-context/) of the request that caused the event: "
    "ingest copies a valid incoming `traceparent` HTTP header onto the touchpoint. "
    "Consumers may propagate it: continue the trace in what they do, and set it (with their own parent id) "
    "on the records they emit because of this one. Absent when the cause carried none.")
LEGACY_NOTE = (
    f"Records written before the routing header was renamed carry the type in `{LEGACY_TYPE_HEADER}` instead "
    f"of `{TYPE_HEADER}`; they may still be on the topic. A `ce_`-prefixed header makes CloudEvents SDKs take "
    "a record for binary mode: read such a record with the structured-mode function (`from_structured`).")
DLQ_HEADERS = {
    "dlq.error": "What failed: the error's class and texts we word ourselves (field names, a SQLSTATE), "
                 "never the data (at most 2000 characters).",
    "dlq.consumer": "The consumer (service) that gave up on the record: stage-engine, messaging or loyalty.",
    "dlq.original.topic": "The topic the record was read from.",
    "dlq.original.partition": "Its partition (decimal).",
    "dlq.original.offset": "Its offset (decimal).",
}


SCHEMAS_REF = "#/components/schemas/{model}"


def _model_schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """`model`'s JSON schema with the models it nests hoisted into `schemas` (the document's
    `components.schemas`) and referenced there: pydantic puts them in a `$defs` inside the schema,
    which AsyncAPI's parser does not resolve from the document (a `#/$defs/...` reference means the
    document root), nor a JSON Schema validator given the document."""
    schema = model.model_json_schema(ref_template=SCHEMAS_REF)
    for name, definition in schema.pop("$defs", {}).items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas named {name!r} in components.schemas")
    return schema


def _envelope(data_schema: dict[str, Any], *, type_schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvents envelope (with the `digest` extension) around `data_schema`."""
    schema = _model_schema(CloudEvent, schemas)
    schema["properties"]["type"] = type_schema
    schema["properties"]["data"] = data_schema
    return schema


def _sealed_envelope(schemas: dict[str, Any]) -> dict[str, Any]:
    """The envelope of a sealed record (lifecycle_shared.sealing)."""
    schema = _model_schema(CloudEvent, schemas)
    schema["description"] = (
        "A sealed record's value: its id, source, type, time and digest as in the clear; `subject` (and the record "
        "key) the id of the customer's data key; `sealed` the algorithm; `data.ciphertext` base64 of a 12-byte nonce "
        "and the AES-256-GCM ciphertext (with its tag) of the JSON `{\"subject\": <customer key>, \"data\": "
        "<data>}`, with the event id as associated data.")
    schema["properties"]["subject"] = {"type": "string", "format": "uuid", "description": "The data key's id."}
    schema["properties"][SEALED_ATTRIBUTE] = {"type": "string", "const": ALGORITHM}
    schema["properties"]["data"] = {"type": "object", "required": ["ciphertext"], "additionalProperties": False,
                                    "properties": {"ciphertext": {"type": "string", "contentEncoding": "base64",
                                                                  "minLength": 1}}}
    schema["required"] = sorted({*schema.get("required", []), SEALED_ATTRIBUTE})
    return schema


def _headers(type_schema: dict[str, Any]) -> dict[str, Any]:
    """The headers every producer of ours sets on a record carrying an event of `type_schema`."""
    return {
        "type": "object",
        "description": "Kafka record headers (values UTF-8). No header starts with `ce_`: the records are "
                       "structured mode, which CloudEvents SDKs detect by the absence of `ce_` headers. "
                       "Consumers ignore headers they do not know. " + LEGACY_NOTE,
        "required": ["content-type", TYPE_HEADER],
        "properties": {
            "content-type": {"type": "string", "const": CONTENT_TYPE,
                             "description": "Structured content mode: the value is a whole CloudEvent in JSON."},
            TYPE_HEADER: {**type_schema, "description": (
                "The CloudEvent's `type`, copied so a consumer can skip records it does not handle "
                "without decoding them (routing header).")},
            TRACEPARENT_HEADER: {"type": "string", "pattern": TRACEPARENT_PATTERN,
                                 "description": TRACEPARENT_DESCRIPTION},
            TRACESTATE_HEADER: {"type": "string", "minLength": 1, "maxLength": MAX_TRACESTATE_BYTES,
                                "description": "Optional, only beside `traceparent`: the W3C `tracestate` "
                                               "(vendor trace data) that came with it; propagate it with it."},
        },
        "dependencies": {TRACESTATE_HEADER: [TRACEPARENT_HEADER]},
        "propertyNames": NOT_BINARY_MODE,
    }


def _dead_letter_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The original record's headers, kept (a legacy `ce_type` is renamed to "
                       f"`{TYPE_HEADER}`), plus the `dlq.*` headers naming what failed and where the record came "
                       "from. Values UTF-8.",
        "required": list(DLQ_HEADERS),
        "properties": {
            "content-type": {"type": "string", "description": "As on the original record."},
            TYPE_HEADER: {"type": "string", "description": "As on the original record (the routing header)."},
            TRACEPARENT_HEADER: {"type": "string", "description": "As on the original record, when it had one."},
            TRACESTATE_HEADER: {"type": "string", "description": "As on the original record, when it had one."},
            **{name: {"type": "string", "minLength": 1, "description": description}
               for name, description in DLQ_HEADERS.items()},
        },
    }


def _kafka_key(schema: dict[str, Any]) -> dict[str, Any]:
    return {"kafka": {"key": schema, "bindingVersion": KAFKA_BINDING_VERSION}}


CUSTOMER_KEY = {
    "type": "string", "minLength": 1,
    "description": "The record key (UTF-8): the CloudEvent's `subject`, the customer key (the userId, or the "
                   "anonymousId while anonymous) - on a sealed record the id of that customer's data key - so one "
                   "customer's events stay in order on one partition."}
ERASURE_KEY = {
    "type": "string", "minLength": 1,
    "description": "The record key (UTF-8): the CloudEvent's `subject`, the erasure id - never a customer key, which "
                   "is personal data."}
DEAD_LETTER_KEY = {
    "type": ["string", "null"],
    "description": "The original record's key, byte for byte: the CloudEvent's `subject` (the customer key, or on a "
                   "sealed record its data key's id) "
                   "for every record our producers wrote; whatever another producer set (possibly none) otherwise."}


def _channel(address: str, message: str | tuple[str, ...], description: str) -> dict[str, Any]:
    names = (message,) if isinstance(message, str) else message
    return {"address": address, "description": description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names}}


def _lifecycle_message(event_type: str, schema: str, description: str, schemas: dict[str, Any], *,
                       key: dict[str, Any] = CUSTOMER_KEY) -> dict[str, Any]:
    type_schema = {"type": "string", "const": event_type}
    return {"name": event_type, "contentType": "application/cloudevents+json", "description": description,
            "headers": _headers(type_schema),
            "payload": _envelope({"$ref": f"#/components/schemas/{schema}"}, type_schema=type_schema,
                                 schemas=schemas),
            "bindings": _kafka_key(key)}


def _dead_letter_channel(topic: str, consumers: str) -> dict[str, Any]:
    return _channel(topic + DLQ_SUFFIX, "deadLetter",
                    f"Records of `{topic}` that {consumers} could not apply: malformed ones at once, failing ones "
                    "after bounded retries; one record per consumer that gave up. Value and key are the original "
                    "record's, byte for byte, so a dead letter can be inspected, fixed and re-sent to its topic.")


def _operation(action: str, channel: str, summary: str) -> dict[str, Any]:
    return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary}


def build() -> dict[str, Any]:
    touchpoint_type = {"type": "string", "pattern": "^touchpoint\\."}
    # The data schemas, then every model they (or the envelopes) nest, hoisted beside them.
    schemas: dict[str, Any] = {}
    for model in (TouchpointData, StageChangedData, HistoryCorrectedData, IdentityMergedData, ErasureRequestedData,
                  RewardRedeemedData, DebtRecordedData, TierChangedData, PointsExpiringData):
        schemas[model.__name__] = _model_schema(model, schemas)
    schemas["SealedEnvelope"] = _sealed_envelope(schemas)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Lifecycle events",
            "version": "1.0.0",
            "description": (
                "Kafka topics of the Lifecycle platform. Every record value is a CloudEvents 1.0 envelope in "
                "structured JSON mode (header content-type application/cloudevents+json); the record key is the "
                f"envelope's `subject`, the customer key; the header `{TYPE_HEADER}` repeats the event type, and "
                f"`{TRACEPARENT_HEADER}` (with `{TRACESTATE_HEADER}`) carries W3C trace context when the cause had "
                "one. No header starts with `ce_`, so CloudEvents SDKs (`from_kafka`, `from_structured`) read every "
                "record. Each topic has a dead-letter topic `<topic>.dlq`. Breaking changes get a new topic "
                "version; within a version changes are additive only. Topics named "
                f"`{SENTINEL_PREFIX}<id>` (with the embedded broker only) are empty markers by which services "
                "notice a broker restart; they carry no events. "
                "Sealed records (crypto-shredding, docs/erasure.md): where the deployment sets "
                "LIFECYCLE_ERASURE_PEPPER, every event but customer.erasure_requested is published as "
                "`components.schemas.SealedEnvelope` - the same envelope whose `subject` and record key are the id of "
                "the customer's data key, whose extension `sealed` names the algorithm, and whose `data` holds the "
                "ciphertext of `{\"subject\": <customer key>, \"data\": <the data documented here>}`; opened, it "
                "is the message documented here. The keys come from ingest's key API; an erasure destroys them."),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": {
            "touchpoints": _channel(
                TOUCHPOINTS, "touchpoint",
                "Storefront touchpoints accepted by ingest (Segment spec fields). "
                "Type `touchpoint.<snake_case event>`, e.g. touchpoint.order_completed. "
                "The id is `<source>/<messageId>` (messageIds are unique per source); "
                "`digest` tells a retry (same digest) from a reused messageId."),
            "stageTransitions": _channel(
                STAGE_TRANSITIONS, ("stageChanged", "historyCorrected", "identityMerged", "erasureRequested"),
                "What the stage engine knows of customers: stage changes (lifecycle.stage_changed), corrections "
                "of a stored stage history (lifecycle.history_corrected) and identity merges (identity.merged), "
                "keyed by the customer key (a merge: the survivor's), so one customer's are in order; and GDPR "
                "erasures (customer.erasure_requested), keyed by the erasure id, never a customer key. "
                "Ids are deterministic: a replay republishes the same ids."),
            "loyaltyEvents": _channel(
                LOYALTY_EVENTS, ("rewardRedeemed", "debtRecorded", "tierChanged", "pointsExpiring"),
                "What loyalty tells others (messaging's campaigns, webhooks): rewards redeemed, debts recorded "
                "(points refunded after they were spent), tiers reached and lost, points about to expire; keyed "
                "by the customer key. "
                "Ids are deterministic: an event written again has the same id."),
            "touchpointsDeadLetter": _dead_letter_channel(TOUCHPOINTS, "the stage engine, messaging or loyalty"),
            "stageTransitionsDeadLetter": _dead_letter_channel(STAGE_TRANSITIONS, "messaging or loyalty"),
            "loyaltyEventsDeadLetter": _dead_letter_channel(LOYALTY_EVENTS, "a consumer"),
        },
        "operations": {
            "publishTouchpoint": _operation("send", "touchpoints", "ingest publishes"),
            "consumeTouchpoint": _operation("receive", "touchpoints", "the stage engine, messaging and loyalty "
                                                                      "subscribe"),
            "publishStageTransition": _operation("send", "stageTransitions", "the stage engine publishes"),
            "consumeStageTransition": _operation("receive", "stageTransitions",
                                                 "messaging, loyalty and marketing tools subscribe"),
            "publishLoyaltyEvent": _operation("send", "loyaltyEvents", "loyalty publishes"),
            "consumeLoyaltyEvent": _operation("receive", "loyaltyEvents", "campaigns and webhooks subscribe"),
            "deadLetterLoyaltyEvent": _operation("send", "loyaltyEventsDeadLetter",
                                                 "a consumer sets aside a loyalty event it cannot apply"),
            "deadLetterTouchpoint": _operation("send", "touchpointsDeadLetter",
                                               "a consumer sets aside a touchpoint it cannot apply"),
            "deadLetterStageTransition": _operation("send", "stageTransitionsDeadLetter",
                                                    "a consumer sets aside a stage transition it cannot apply"),
        },
        "components": {
            "messages": {
                "touchpoint": {
                    "name": "touchpoint", "contentType": "application/cloudevents+json",
                    "headers": _headers(touchpoint_type),
                    "payload": _envelope({"$ref": "#/components/schemas/TouchpointData"}, type_schema=touchpoint_type,
                                         schemas=schemas),
                    "bindings": _kafka_key(CUSTOMER_KEY),
                },
                "stageChanged": _lifecycle_message(
                    STAGE_CHANGED_TYPE, "StageChangedData",
                    "A customer moved between lifecycle stages. `historical`: caused by imported history or a "
                    "replay - a fact to record, never a reason to message anyone.", schemas),
                "historyCorrected": _lifecycle_message(
                    HISTORY_CORRECTED_TYPE, "HistoryCorrectedData",
                    "A customer's stored stage history was recomputed (a late event, a merge, a replay): the "
                    "transitions it no longer holds and the ones it gained. Announced transitions stay facts.",
                    schemas),
                "identityMerged": _lifecycle_message(
                    IDENTITY_MERGED_TYPE, "IdentityMergedData",
                    "Ids now belonging to another customer key (a merge, or an anonymous customer identifying): "
                    "services keeping per-customer state move it from `absorbed_ids` to `survivor_id`.", schemas),
                "erasureRequested": _lifecycle_message(
                    ERASURE_REQUESTED_TYPE, "ErasureRequestedData",
                    "Erase a customer everywhere (docs/erasure.md). The record key and `subject` are the erasure "
                    "id, not a customer key; the customer's ids appear only as keyed hashes (HMAC-SHA256 under the "
                    "deployment's erasure pepper). Services erase the matching rows and keep anonymised "
                    "aggregates; applying it twice changes nothing.", schemas, key=ERASURE_KEY),
                "rewardRedeemed": _lifecycle_message(
                    REWARD_REDEEMED_TYPE, "RewardRedeemedData",
                    "A customer redeemed a reward with points (a cancellation later gives them back).", schemas),
                "debtRecorded": _lifecycle_message(
                    DEBT_RECORDED_TYPE, "DebtRecordedData",
                    "Points taken back (a refund) after they were spent: owed, settled from the next credits.",
                    schemas),
                "tierChanged": _lifecycle_message(
                    TIER_CHANGED_TYPE, "TierChangedData",
                    "A customer reached a higher tier, or lost one after its grace period.", schemas),
                "pointsExpiring": _lifecycle_message(
                    POINTS_EXPIRING_TYPE, "PointsExpiringData",
                    "Points the customer holds expire soon (once per batch of lots, `expiry.warn_days` ahead).",
                    schemas),
                "deadLetter": {
                    "name": "deadLetter",
                    "description": "A record a consumer could not apply, as it came. Normally a CloudEvent of its "
                                   "topic's type (the schema below); a record dead-lettered because it is not one "
                                   "(not JSON, not a CloudEvent) is kept as it came and does not match it.",
                    "headers": _dead_letter_headers(),
                    "payload": _envelope({"type": "object", "description": "The original event's data, as it "
                                                                           "came (it may be what failed)."},
                                         type_schema={"type": "string", "minLength": 1}, schemas=schemas),
                    "bindings": _kafka_key(DEAD_LETTER_KEY),
                },
            },
            "schemas": schemas,
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
