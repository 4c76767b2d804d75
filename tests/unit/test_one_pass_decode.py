"""The consumer's one-pass decode (`event_with_data`, `Route.typed_at_once`) gives exactly what the two-pass
way (`CloudEvent.model_validate_json`, then `data_as`) gives, and gives way to it for whatever it does not take;
`derived_event_id` is `uuid.uuid5`'s value."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_shared.events import (
    DERIVED_ID_NAMESPACE,
    CloudEvent,
    IdentityMergedData,
    StageChangedData,
    TouchpointData,
    derived_event_id,
)
from lifecycle_shared.kafka.registry import Route
from lifecycle_shared.testing import make_cloud_event
from lifecycle_shared.typed_events import data_as, event_with_data

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
TOUCHPOINT = {"type": "track", "event": "Order Completed", "userId": "ann", "messageId": "m-1",
              "timestamp": T0.isoformat(), "receivedAt": T0.isoformat(), "properties": {"order_id": "o-1",
              "revenue": 12.5, "big": 123456789012345678901234567890}, "context": {"traits": {"email": "a@x"}},
              "channel": "web"}


async def no_handler(conn, events):  # pragma: no cover - never called
    return []


def both_ways(model, value: bytes):
    event = CloudEvent.model_validate_json(value)
    return event, data_as(model, event)


@pytest.mark.parametrize("event_id", ["shop/m-1", "shop+write/m-1"])
@pytest.mark.parametrize("verified", [None, True, False])
def test_a_touchpoint_in_one_pass_is_what_two_passes_give(event_id, verified):
    data = TOUCHPOINT if verified is None else {**TOUCHPOINT, "verified": verified}
    value = make_cloud_event(id=event_id, type="touchpoint.order_completed", data=data, ext="kept").to_bytes()
    found = event_with_data(TouchpointData, value)
    assert found is not None
    event, typed = found
    two_event, two_data = both_ways(TouchpointData, value)
    assert typed == two_data and typed.model_fields_set == two_data.model_fields_set
    assert typed.model_extra == two_data.model_extra == {"channel": "web"}
    assert event.data is typed
    assert event.model_dump(exclude={"data"}) == two_event.model_dump(exclude={"data"})
    assert event.model_extra == two_event.model_extra == {"ext": "kept"}


def test_other_data_models_in_one_pass():
    data = {"survivor_id": "ann", "absorbed_id": "anon-1", "absorbed_ids": ["anon-1"], "reason": "identify",
            "cause_event_ids": ["e"], "event_time": T0.isoformat(), "processed_at": T0.isoformat()}
    value = make_cloud_event(type="identity.merged", data=data).to_bytes()
    found = event_with_data(IdentityMergedData, value)
    assert found is not None and found[1] == both_ways(IdentityMergedData, value)[1]


@pytest.mark.parametrize("value", [
    b"not json", b'{"id": "x"}',  # not a CloudEvent
    make_cloud_event(data={"type": "track"}).to_bytes(),  # data the model refuses
])
def test_what_one_pass_does_not_take_is_left_to_the_two_pass_way(value):
    assert event_with_data(TouchpointData, value) is None
    assert event_with_data(StageChangedData, make_cloud_event(data=TOUCHPOINT).to_bytes()) is None


def test_a_sealed_record_is_never_typed_at_once():
    sealed = make_cloud_event(data=TOUCHPOINT).model_dump(mode="json") | {"sealed": "a256gcm"}
    route = Route(TouchpointData, no_handler)
    assert route.typed_at_once(json.dumps(sealed).encode()) is None
    clear = route.typed_at_once(make_cloud_event(data=TOUCHPOINT).to_bytes())
    assert clear is not None and clear.data.userId == "ann"


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_derived_ids_are_uuid5s(parts):
    try:
        expected = str(uuid.uuid5(DERIVED_ID_NAMESPACE, "|".join(parts)))
    except UnicodeEncodeError:  # a lone surrogate: neither encodes it
        with pytest.raises(UnicodeEncodeError):
            derived_event_id(*parts)
        return
    assert derived_event_id(*parts) == expected
