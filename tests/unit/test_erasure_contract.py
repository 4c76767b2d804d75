"""The erasure contract (docs/erasure.md): the event carries keyed hashes only, keyed by the erasure id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lifecycle_shared import asyncapi
from lifecycle_shared.erasure import erasure_id, id_hash, id_hashes
from lifecycle_shared.events import ERASURE_REQUESTED_TYPE, ErasureRequestedData
from pydantic import ValidationError

PEPPER = b"test-pepper"


def test_an_id_hash_is_keyed_and_does_not_contain_the_id():
    digest = id_hash(PEPPER, "ann@example.com")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert "ann" not in digest
    assert digest == id_hash(PEPPER, "ann@example.com")
    assert digest != id_hash(b"another-pepper", "ann@example.com")
    with pytest.raises(ValueError):
        id_hash(b"", "ann")


def test_a_customers_hashes_are_sorted_and_deduplicated():
    hashes = id_hashes(PEPPER, ["user-1", "anon-1", "user-1"])
    assert hashes == sorted({id_hash(PEPPER, "user-1"), id_hash(PEPPER, "anon-1")})


def test_the_erasure_id_is_stable_per_customer():
    assert erasure_id("42") == erasure_id("42") != erasure_id("43")


def test_the_event_data_refuses_cleartext_fields_and_an_empty_id_list():
    data = {"erasure_id": erasure_id("42"), "id_hashes": id_hashes(PEPPER, ["u"]),
            "requested_at": datetime(2026, 1, 1, tzinfo=UTC)}
    assert ErasureRequestedData.model_validate(data).hash_algorithm == "hmac-sha256"
    with pytest.raises(ValidationError):
        ErasureRequestedData.model_validate({**data, "user_id": "u"})
    with pytest.raises(ValidationError):
        ErasureRequestedData.model_validate({**data, "id_hashes": []})


def test_the_asyncapi_document_keys_the_erasure_by_its_id_on_stage_transitions():
    document = asyncapi.build()
    message = document["components"]["messages"]["erasureRequested"]
    assert message["name"] == ERASURE_REQUESTED_TYPE
    assert "erasure id" in message["bindings"]["kafka"]["key"]["description"]
    assert "erasureRequested" in document["channels"]["stageTransitions"]["messages"]
