"""Crypto-shredding at ingest (docs/erasure.md), against real PostgreSQL and a real broker: with the deployment's
pepper every touchpoint is published sealed under its customer's data key - nothing of the customer readable on the
topic - and the key API gives the key (to the services' token only) that opens it to exactly the event accepted.
An erasure destroys the keys: the records stay, unreadable, and the ids get new keys."""

from __future__ import annotations

import base64
import uuid

import pytest
from lifecycle_ingest.main import create_app
from lifecycle_shared.erasure import id_hash
from lifecycle_shared.events import CloudEvent
from lifecycle_shared.sealing import is_sealed, keys_token, open_event
from lifecycle_shared.testing import make_touchpoint, read_topic

from tests.support.in_process import running
from tests.support.ingest import ADMIN_TOKEN, settings_for

PEPPER = "sealing-test-pepper-3c9e1b"
KEYS = {"authorization": f"Bearer {keys_token(PEPPER.encode())}"}


@pytest.fixture(scope="module")
async def ingest(namespace):
    async with running(create_app(settings_for(namespace, erasure_pepper=PEPPER))) as c:
        c.key = (await c.post("/v1/admin/keys", json={"source": "sealed", "kind": "server"},
                              headers={"authorization": f"Bearer {ADMIN_TOKEN}"})).json()["key"]
        yield c


async def _record(namespace, key_id: str, event_id_part: str):
    def ours(record) -> bool:
        return record.key == key_id.encode() and event_id_part in CloudEvent.model_validate_json(record.value).id

    records = await read_topic(namespace.kafka_bootstrap, namespace.topic_prefix + "touchpoints.v1", until=ours)
    return next(r for r in records if ours(r))


async def test_a_touchpoint_is_published_sealed_and_opens_with_its_customers_key(ingest, namespace):
    h = uuid.uuid4().hex[:10]
    user, email = f"user-{h}", f"ana.{h}@example.com"
    event = make_touchpoint(type="identify", event=None, userId=user, anonymousId=f"anon-{h}",
                            traits={"email": email, "phone": f"+4479{h[:8]}"})
    sent = await ingest.post("/v1/identify", json=event, auth=(ingest.key, ""))
    assert sent.status_code == 200, sent.text

    answer = await ingest.post("/internal/keys", json={"id_hashes": [id_hash(PEPPER.encode(), user)]}, headers=KEYS)
    assert answer.status_code == 200, answer.text
    (subject_key,) = answer.json()["keys"].values()
    record = await _record(namespace, subject_key["key_id"], event["messageId"])
    for secret in (user, email, f"anon-{h}", h):
        assert secret.encode() not in record.value and secret.encode() not in record.key
    sealed = CloudEvent.model_validate_json(record.value)
    assert is_sealed(sealed) and sealed.subject == subject_key["key_id"]

    opened = open_event(sealed, base64.b64decode(subject_key["key"]))
    assert opened.subject == user and opened.data["traits"]["email"] == email
    assert opened.data["messageId"] == event["messageId"] and not is_sealed(opened)
    looked_up = await ingest.post("/internal/keys/lookup", json={"key_ids": [subject_key["key_id"]]}, headers=KEYS)
    assert looked_up.json()["keys"] == {subject_key["key_id"]: subject_key["key"]}


async def test_the_key_api_answers_only_the_services_token(ingest):
    body = {"id_hashes": ["0" * 64]}
    assert (await ingest.post("/internal/keys", json=body)).status_code == 401
    assert (await ingest.post("/internal/keys", json=body,
                              headers={"authorization": f"Bearer {keys_token(b'another-pepper')}"})).status_code == 401
    assert (await ingest.post("/internal/keys", json=body, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
            ).status_code == 401
    assert (await ingest.post("/internal/keys", json={"id_hashes": ["not-a-hash"]}, headers=KEYS)).status_code == 400
    assert (await ingest.post("/internal/keys/lookup", json={"key_ids": ["x"] * 1001}, headers=KEYS)
            ).status_code == 400


async def test_the_same_customer_keeps_one_key_and_partition(ingest, namespace):
    user = f"user-{uuid.uuid4().hex[:10]}"
    hashes = {"id_hashes": [id_hash(PEPPER.encode(), user)]}
    first = (await ingest.post("/internal/keys", json=hashes, headers=KEYS)).json()["keys"]
    events = [make_touchpoint(event="Product Viewed", userId=user) for _ in range(3)]
    response = await ingest.post("/v1/batch", json={"batch": events}, auth=(ingest.key, ""))
    assert response.status_code == 200, response.text
    again = (await ingest.post("/internal/keys", json=hashes, headers=KEYS)).json()["keys"]
    assert again == first
    (key_id,) = [k["key_id"] for k in first.values()]
    records = [await _record(namespace, key_id, e["messageId"]) for e in events]
    assert len({r.partition for r in records}) == 1
