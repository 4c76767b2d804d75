"""An event emitted with its data model as `data` (`event_of`, the stage engine's `writes.Changes`) is written
to the outbox as exactly the bytes of the way it was built before - the model dumped to a dict, validated again
into a `CloudEvent`, `to_bytes` - byte for byte, whatever the data holds; and they still read as the AsyncAPI
document says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator
from lifecycle_shared.events import (
    HISTORY_CORRECTED_TYPE,
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    CloudEvent,
    HistoryCorrectedData,
    IdentityMergedData,
    StageChangedData,
    TransitionRecord,
)
from lifecycle_shared.typed_events import envelope_of, event_of
from pydantic import BaseModel
from referencing import Registry
from referencing.jsonschema import DRAFT7

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
DOCUMENT_URI = "urn:lifecycle:asyncapi"

TEXT = st.text(max_size=12)  # any code point but lone surrogates: quotes, backslashes, controls, emoji
NAME = st.text(min_size=1, max_size=12)
OPTIONAL = st.none() | TEXT
TIMES = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                                timezone(timedelta(hours=-8)), timezone(timedelta(seconds=-3601))]))
# Traits as JSON may hold them (a profile keeps short scalars; anything JSON takes is checked here).
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2 ** 64) | TEXT
           | st.floats(allow_nan=True, allow_infinity=True))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=8)
REVENUE = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10 ** 6, 10 ** 6).map(float)

STAGE_CHANGED = st.builds(
    StageChangedData, customer_id=TEXT, user_id=OPTIONAL, anonymous_ids=st.lists(TEXT, max_size=3),
    from_stage=OPTIONAL, to_stage=TEXT, reason=TEXT, rule_version=TEXT, cause_event_ids=st.lists(TEXT, max_size=3),
    event_time=TIMES, processed_at=TIMES, traits=st.dictionaries(TEXT, VALUES, max_size=5),
    orders=st.integers(0, 10 ** 6), revenue=REVENUE, historical=st.booleans(), verified=st.booleans())
TRANSITION = st.builds(TransitionRecord, id=TEXT, from_stage=OPTIONAL, to_stage=TEXT, reason=TEXT, rule_version=TEXT,
                       cause_event_ids=st.lists(TEXT, max_size=2), event_time=TIMES, processed_at=TIMES,
                       historical=st.booleans())
HISTORY_CORRECTED = st.builds(HistoryCorrectedData, customer_id=TEXT, stage=OPTIONAL,
                              superseded=st.lists(TEXT, max_size=3), added=st.lists(TRANSITION, max_size=3),
                              processed_at=TIMES)
IDENTITY_MERGED = st.builds(IdentityMergedData, survivor_id=TEXT, absorbed_id=TEXT,
                            absorbed_ids=st.lists(TEXT, max_size=3), user_id=OPTIONAL, reason=TEXT,
                            cause_event_ids=st.lists(TEXT, max_size=3), event_time=TIMES, processed_at=TIMES)
EMITTED = st.sampled_from([(STAGE_CHANGED_TYPE, STAGE_CHANGED), (HISTORY_CORRECTED_TYPE, HISTORY_CORRECTED),
                           (IDENTITY_MERGED_TYPE, IDENTITY_MERGED)])
ENVELOPE = st.fixed_dictionaries({"id": st.text(min_size=1, max_size=40), "source": NAME, "time": TIMES,
                                  "subject": NAME})


def as_before(data: BaseModel, **attributes) -> CloudEvent:
    """How the stage engine built an emitted event until `event_of`."""
    return CloudEvent(**attributes, data=data.model_dump(mode="json"))


@settings(max_examples=400, deadline=None)
@given(emitted=EMITTED, attributes=ENVELOPE, data=st.data())
def test_an_event_built_from_its_model_has_the_bytes_of_the_old_way(emitted, attributes, data):
    event_type, models = emitted
    model = data.draw(models)
    new, old = event_of(model, type=event_type, **attributes), as_before(model, type=event_type, **attributes)
    assert new.to_bytes() == old.to_bytes()
    # What the outbox and the tracing read from it:
    assert (new.id, new.type, new.subject, new.time) == (old.id, old.type, old.subject, old.time)
    assert new.data is model


@settings(max_examples=200, deadline=None)
@given(model=STAGE_CHANGED, attributes=ENVELOPE, digest=st.none() | st.text(max_size=64),
       extensions=st.dictionaries(st.sampled_from(["traceid", "partitionkey", "ext"]), st.none() | TEXT, max_size=3))
def test_an_envelope_of_a_model_leaves_out_its_own_unset_attributes_only(model, attributes, digest, extensions):
    """Set or not, the digest and extension attributes are written as a CloudEvent with a dict writes them; the
    model's nulls stay (`exclude_none` would drop them)."""
    fields = {**attributes, "type": STAGE_CHANGED_TYPE, "digest": digest, **extensions}
    new = envelope_of(StageChangedData)(**fields, data=model)
    assert new.to_bytes() == as_before(model, **fields).to_bytes()


@settings(max_examples=100, deadline=None)
@given(emitted=EMITTED, attributes=ENVELOPE, data=st.data())
def test_the_bytes_read_as_the_asyncapi_document_says(emitted, attributes, data):
    event_type, models = emitted
    model = data.draw(models)
    record = json.loads(event_of(model, type=event_type, **attributes).to_bytes())
    message = {STAGE_CHANGED_TYPE: "stageChanged", HISTORY_CORRECTED_TYPE: "historyCorrected",
               IDENTITY_MERGED_TYPE: "identityMerged"}[event_type]
    assert [error.message for error in _validator(message).iter_errors(record)] == []


_DOCUMENT = json.loads(DOCUMENT.read_text())


def _validator(message: str) -> Draft7Validator:
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT7.create_resource(_DOCUMENT))
    return Draft7Validator({"$ref": f"{DOCUMENT_URI}#/components/messages/{message}/payload"}, registry=registry,
                           format_checker=Draft7Validator.FORMAT_CHECKER)
