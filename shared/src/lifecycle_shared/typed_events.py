"""Events with their data as a model: a consumed record decoded as envelope and data (`data_as`, or in one pass
`event_with_data`), and an event to emit built from its data model and serialised once (`event_of`)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError, create_model

from lifecycle_shared.errors import invalid_data
from lifecycle_shared.events import CloudEvent, TouchpointData, sent_with_server_key

DataModel = TypeVar("DataModel", bound=BaseModel)


def data_as(model: type[DataModel], event: CloudEvent) -> DataModel:
    """The event's `data` as `model`; a violation is permanent (PermanentError, no data quoted). A touchpoint
    written before `verified` existed is verified when its id has a server key's form (`sent_with_server_key`)."""
    data = event.data
    if model is TouchpointData and "verified" not in data:
        data = {**data, "verified": sent_with_server_key(event.id)}
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise invalid_data(f"{event.type} data", error, fields=model.model_fields) from None


def event_with_data(model: type[DataModel], value: bytes) -> tuple[CloudEvent, DataModel] | None:
    """A record's value validated as envelope and `model` data in one pass (`CloudEvent.model_validate_json`
    then `data_as` parse and validate it twice): the envelope, whose `data` is then the model itself, not a
    dict, and the data - exactly what `data_as` gives. None when the value is not that (not JSON, not a
    CloudEvent, data the model refuses, sealed data): decode it the two-pass way, which says what is wrong."""
    try:
        event = envelope_of(model).model_validate_json(value)
    except ValidationError:
        return None
    data: Any = event.data  # the envelope's field, declared dict on CloudEvent: here `model`
    if model is TouchpointData and "verified" not in data.model_fields_set:
        data.verified = sent_with_server_key(event.id)  # as data_as does
    return event, data


class ModelEnvelope(CloudEvent):
    """The base of `envelope_of`'s envelopes: `data` is a model, not a dict."""

    def to_bytes(self) -> bytes:
        """The bytes the same event with its data as a dict has: the envelope's None attributes left out, the
        data's nulls kept (`exclude_none` would drop those too: it reaches into a model, not into a dict)."""
        unset = {name for name, value in self.__dict__.items() if value is None}
        if self.__pydantic_extra__:
            unset.update(name for name, value in self.__pydantic_extra__.items() if value is None)
        # What `model_dump_json` calls, without its str round trip.
        return self.__pydantic_serializer__.to_json(self, exclude=unset or None)


@functools.lru_cache(maxsize=64)  # one envelope model per data model
def envelope_of(model: type[BaseModel]) -> type[ModelEnvelope]:
    """The CloudEvent envelope with `data` of `model` (extension attributes kept, as CloudEvent keeps them)."""
    return create_model(f"{model.__name__}Event", __base__=ModelEnvelope, data=(model, ...))


def event_of(data: BaseModel, *, id: str, source: str, type: str, time: datetime, subject: str) -> CloudEvent:
    """An event to emit, its `data` the model as built (the envelope of `envelope_of`), not dumped to a dict and
    validated again: its `to_bytes` are the bytes of `CloudEvent(..., data=data.model_dump(mode="json"))`, the
    model serialised once, when the outbox takes them (so nothing may change the model, or what it holds, after
    this: pydantic gave it containers of its own). Its `data` is then the model, not a dict."""
    envelope: Any = envelope_of(data.__class__)  # `data` of the model, not the base's dict
    event: ModelEnvelope = envelope(id=id, source=source, type=type, time=time, subject=subject, data=data)
    return event
