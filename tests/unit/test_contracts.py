"""Event contracts: the committed AsyncAPI document matches the pydantic models."""

from __future__ import annotations

from pathlib import Path

from lifecycle_shared import asyncapi

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_committed_asyncapi_document_is_generated_from_the_contracts():
    assert DOCUMENT.read_text() == asyncapi.render(), (
        "docs/asyncapi.json is stale: run `python -m lifecycle_shared.asyncapi > docs/asyncapi.json`")


def test_every_topic_is_documented_with_a_cloudevents_envelope():
    document = asyncapi.build()
    assert {channel["address"] for channel in document["channels"].values()} == {
        "touchpoints.v1", "stage-transitions.v1"}
    for message in document["components"]["messages"].values():
        assert {"id", "source", "type", "time", "subject", "data"} <= set(message["payload"]["required"])
