"""Sealed records (lifecycle_shared.sealing): what is sealed opens to exactly what it was, only under its key and
on its own event; nothing of the customer stays readable."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_shared.errors import PermanentError
from lifecycle_shared.events import CloudEvent
from lifecycle_shared.sealing import ALGORITHM, is_sealed, keys_token, new_key, open_event, seal_value

KEY_ID = "5b1d7c1e-3f7a-4c1e-9e55-0a4b2f0c9d11"
texts = st.text(min_size=1, max_size=40)


def event(subject: str = "user-42", data: dict | None = None, **extra) -> CloudEvent:
    return CloudEvent(id="e-1", source="/sources/web", type="touchpoint.identify",
                      time=datetime(2026, 12, 7, tzinfo=UTC),
                      subject=subject, digest="ab" * 32,
                      data=data if data is not None else {"userId": subject, "traits": {"email": "ana@example.com"}},
                      **extra)


@given(subject=texts, data=st.dictionaries(texts, st.one_of(texts, st.integers(), st.none())))
def test_a_sealed_event_opens_to_exactly_the_event_it_was(subject, data):
    key = new_key()
    clear = event(subject, data, lifecyclesource="web")
    sealed = CloudEvent.model_validate_json(seal_value(clear.to_bytes(), key_id=KEY_ID, key=key))
    assert is_sealed(sealed) and not is_sealed(clear)
    assert sealed.subject == KEY_ID and sealed.model_extra["sealed"] == ALGORITHM
    assert (sealed.id, sealed.type, sealed.source, sealed.time, sealed.digest) == (
        clear.id, clear.type, clear.source, clear.time, clear.digest)
    assert open_event(sealed, key) == clear


def test_nothing_of_the_customer_is_readable_in_a_sealed_record():
    value = seal_value(event().to_bytes(), key_id=KEY_ID, key=new_key())
    assert b"user-42" not in value and b"example.com" not in value and b"email" not in value
    assert json.loads(value)["data"].keys() == {"ciphertext"}


def test_it_opens_only_under_its_key_and_on_its_own_event():
    key = new_key()
    sealed = CloudEvent.model_validate_json(seal_value(event().to_bytes(), key_id=KEY_ID, key=key))
    with pytest.raises(PermanentError, match="does not open"):
        open_event(sealed, new_key())
    moved = sealed.model_copy(update={"id": "e-2"})  # the ciphertext copied onto another event
    with pytest.raises(PermanentError, match="does not open"):
        open_event(moved, key)
    garbled = sealed.model_copy(update={"data": {"ciphertext": "not base64!"}})
    with pytest.raises(PermanentError, match="does not open"):
        open_event(garbled, key)
    other = CloudEvent.model_validate(sealed.model_dump() | {"sealed": "rot13"})
    with pytest.raises(PermanentError, match="unknown algorithm"):
        open_event(other, key)


def test_the_key_api_token_depends_on_the_pepper():
    assert keys_token(b"pepper-a") == keys_token(b"pepper-a") != keys_token(b"pepper-b")
    assert len(keys_token(b"pepper-a")) == 64
