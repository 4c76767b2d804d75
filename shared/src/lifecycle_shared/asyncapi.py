"""The AsyncAPI 3.0 document of every topic, generated from the pydantic contracts.

    python -m lifecycle_shared.asyncapi > docs/asyncapi.json

A test keeps the committed document equal to what the contracts generate.
"""

from __future__ import annotations

import json
from typing import Any

from lifecycle_shared.events import CloudEvent, StageChangedData, TouchpointData
from lifecycle_shared.topics import STAGE_TRANSITIONS, TOUCHPOINTS


def _envelope(data_model: type, *, event_type: str) -> dict[str, Any]:
    schema = CloudEvent.model_json_schema()
    schema["properties"]["type"] = {"type": "string", "pattern": event_type}
    schema["properties"]["data"] = {"$ref": f"#/components/schemas/{data_model.__name__}"}
    return schema


def build() -> dict[str, Any]:
    touchpoint_schema = TouchpointData.model_json_schema()
    stage_schema = StageChangedData.model_json_schema()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Lifecycle events",
            "version": "1.0.0",
            "description": "Kafka topics of the Lifecycle platform. Every record value is a CloudEvents 1.0 "
                           "envelope in structured JSON mode (content-type application/cloudevents+json); "
                           "the record key is the envelope's `subject`, the customer key. Breaking changes "
                           "get a new topic version; within a version changes are additive only.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": {
            "touchpoints": {
                "address": TOUCHPOINTS,
                "description": "Storefront touchpoints accepted by ingest (Segment spec fields). "
                               "Type `touchpoint.<snake_case event>`, e.g. touchpoint.order_completed. "
                               "The id is `<source>/<messageId>` (messageIds are unique per source); "
                               "`digest` tells a retry (same digest) from a reused messageId.",
                "messages": {"touchpoint": {"$ref": "#/components/messages/touchpoint"}},
            },
            "stageTransitions": {
                "address": STAGE_TRANSITIONS,
                "description": "A customer moved between lifecycle stages (type lifecycle.stage_changed). "
                               "Ids are deterministic: a replay republishes the same ids.",
                "messages": {"stageChanged": {"$ref": "#/components/messages/stageChanged"}},
            },
        },
        "operations": {
            "publishTouchpoint": {"action": "send", "channel": {"$ref": "#/channels/touchpoints"},
                                  "summary": "ingest publishes"},
            "consumeStageTransition": {"action": "receive", "channel": {"$ref": "#/channels/stageTransitions"},
                                       "summary": "messaging, loyalty and marketing tools subscribe"},
        },
        "components": {
            "messages": {
                "touchpoint": {"name": "touchpoint", "payload": _envelope(TouchpointData, event_type="^touchpoint\\.")},
                "stageChanged": {"name": "lifecycle.stage_changed",
                                 "payload": _envelope(StageChangedData, event_type="^lifecycle\\.stage_changed$")},
            },
            "schemas": {"TouchpointData": touchpoint_schema, "StageChangedData": stage_schema},
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
