"""GDPR erasure end to end (docs/erasure.md): a customer with an anonymousId merged into a userId, an email and a
phone, orders, an email sent through the real SMTP sink and points; one admin call on the stage engine; the
report turns `complete` once ingest, messaging and loyalty applied `customer.erasure_requested`. The scan of every
text, json, jsonb, array and bytea column of every table of the four databases finds each identifier before (the
positive control) and none after; a second call, by another of their ids, answers the same report.

The topics too (crypto-shredding): every record of every topic of the namespace - key, value and headers, as on
the broker - holds none of them, before or after; opened with the keys ingest's key API gives the services, the
records hold each of them before (the positive control: the data is there, sealed) and none after (the keys are
gone, and the records with them)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from jsonschema import Draft7Validator
from lifecycle_devstack.services import SERVICES
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import CloudEvent
from lifecycle_shared.sealing import open_event, seal_value
from lifecycle_shared.testing import eventually, make_touchpoint

from tests.support.erasure import opened_hits, raw_hits, scan_database
from tests.support.pipeline import ERASURE_PEPPER, metric_total
from tests.support.topics import lookup_keys, read_every_topic

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


async def _scan(pipeline, needles: list[str]) -> dict[str, dict[str, list[str]]]:
    """database -> needle -> the `table.column`s holding it, over the four databases."""
    found = {}
    for service in SERVICES:
        engine = create_engine(pipeline.config.database_url(service))
        try:
            found[service.name] = await scan_database(engine, needles)
        finally:
            await engine.dispose()
    return found


async def _scan_topics(pipeline, needles: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]], dict]:
    """As on the broker, and opened with the keys the key API still gives: needle -> where, twice; and the records.
    Every sealed record's value is checked against the AsyncAPI document's SealedEnvelope on the way."""
    records = await read_every_topic(pipeline.config.kafka_bootstrap, pipeline.config.topic_prefix)
    assert sum(len(rs) for rs in records.values()) > 0, "no record on any topic: the scan would prove nothing"
    sealed = Draft7Validator(json.loads(DOCUMENT.read_text())["components"]["schemas"]["SealedEnvelope"])
    for record in (r for rs in records.values() for r in rs if r.value and b'"sealed"' in r.value):
        assert not list(sealed.iter_errors(json.loads(record.value))), record.value[:300]
    opened, _ = await opened_hits(records, needles, keys_url=pipeline.url("ingest"), pepper=ERASURE_PEPPER)
    return raw_hits(records, needles), opened, records


async def _in_flight(pipeline, records: dict, where: list[str]) -> tuple[str, bytes, bytes, list]:
    """A touchpoint of the customer's that no consumer has seen yet, as ingest would have sealed it before the
    erasure: one of theirs opened, given a new event id, sealed again under the same key (topic, key, value,
    headers)."""
    topic, at = next(w.split("@") for w in where if w.split("@")[0].endswith("touchpoints.v1"))
    (record,) = [r for r in records[topic] if f"{r.partition}/{r.offset}" == at]
    key_id = record.key.decode()
    key = (await lookup_keys([key_id], keys_url=pipeline.url("ingest"), pepper=ERASURE_PEPPER))[key_id]
    event = open_event(CloudEvent.model_validate_json(record.value), key)
    fresh = event.model_copy(update={"id": f"{event.id}-in-flight"})
    return topic, record.key, seal_value(fresh.to_bytes(), key_id=key_id, key=key), list(record.headers)


async def _redeliver(pipeline, record: tuple[str, bytes, bytes, list]) -> None:
    topic, key, value, headers = record
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.config.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def _erased_count(pipeline, client: httpx.AsyncClient, above: float | None = None) -> float | None:
    text = (await client.get(pipeline.url("stage-engine") + "/metrics")).text
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("lifecycle_events_consumed_total{") and 'outcome="erased"' in line)
    return total if above is None or total > above else None


async def _settled(pipeline, client: httpx.AsyncClient, quiet_s: float = 3, timeout_s: float = 90) -> None:
    """Until no consumer has taken an event for `quiet_s`: every event the customer caused has been applied."""
    async def consumed() -> float:
        return sum([await metric_total(client, pipeline.url(name), "lifecycle_events_consumed_total")
                    for name in ("stage-engine", "messaging", "loyalty")])

    deadline, last, since = time.monotonic() + timeout_s, await consumed(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the consumers never settled"
        await asyncio.sleep(0.5)
        now = await consumed()
        if now != last:
            last, since = now, time.monotonic()


async def test_one_call_erases_a_customer_from_the_four_databases(pipeline):
    h = uuid.uuid4().hex[:10]
    anon, user = f"anon-{h}", f"user-{h}"
    email, phone = f"ann.{h}@example.com", f"+4479{h[:8]}"
    admin = {"authorization": f"Bearer {pipeline.admin_token}"}
    async with pipeline.client() as client:
        for event in (make_touchpoint(type="page", event=None, name="Home", anonymousId=anon),
                      make_touchpoint(type="identify", event=None, anonymousId=anon, userId=user,
                                      traits={"email": email, "phone": phone, "firstName": "Ann"}),
                      make_touchpoint(event="Order Completed", userId=user, anonymousId=anon,
                                      properties={"order_id": f"o-{h}", "revenue": 60})):
            assert (await pipeline.send(client, event)).status_code == 200
        async def mailed():
            with pipeline.mail.lock:
                return [m for m in pipeline.mail.messages if email in str(m["To"])] or None

        await eventually(mailed, timeout_s=60, what="an email to the customer")

        async def earned():
            balance = await pipeline.get(client, "loyalty", f"/v1/customers/{user}/balance")
            return balance if balance and balance["balance"] > 0 else None

        await eventually(earned, timeout_s=60, what="the customer's points")
        await _settled(pipeline, client)
        needles = [anon, user, email, phone]
        before = await _scan(pipeline, needles)
        for needle in needles:  # the positive control: the scan looks where they are
            assert any(found[needle] for found in before.values()), (needle, before)
        assert before["messaging"][email] and before["loyalty"][user] and before["stage-engine"][phone], before
        raw, opened_before, records = await _scan_topics(pipeline, needles)
        assert raw == {needle: [] for needle in needles}, raw  # sealed from the start: nothing in clear
        assert all(opened_before[n] for n in needles), opened_before  # ... and there, for whoever holds the keys
        topics = {where.split("@")[0].removeprefix(pipeline.config.topic_prefix) for where in opened_before[user]}
        # (loyalty-events.v1 carries nothing of theirs here: 60 points reach no tier and redeem nothing)
        assert {"touchpoints.v1", "stage-transitions.v1"} <= topics, topics

        in_flight = await _in_flight(pipeline, records, opened_before[anon])
        answer = await client.post(pipeline.url("stage-engine") + "/v1/admin/erasures", json={"id": anon},
                                   headers=admin)
        assert answer.status_code == 202, answer.text
        erasure_id = answer.json()["erasure_id"]

        async def complete():
            report = await client.get(pipeline.url("stage-engine") + f"/v1/admin/erasures/{erasure_id}",
                                      headers=admin)
            assert report.status_code == 200, report.text
            return report.json() if report.json()["status"] == "complete" else None

        report = await eventually(complete, timeout_s=60, what="the erasure complete in every service")
        assert report["services"]["messaging"]["counts"]["contacts"] >= 1, report
        assert report["services"]["loyalty"]["counts"]["orders"] == 1, report
        assert report["services"]["stage-engine"]["counts"]["identities"] >= 2, report
        assert report["services"]["ingest"]["counts"]["subject_keys"] >= 2, report  # the anonymousId's, the userId's
        await _settled(pipeline, client)

        after = await _scan(pipeline, needles)
        assert {db: {n: found[n] for n in needles} for db, found in after.items()} == {
            db: {n: [] for n in needles} for db in after}
        assert all(found[""] for found in after.values())  # every database was looked at
        raw, opened, _ = await _scan_topics(pipeline, needles)
        assert (raw, opened) == ({needle: [] for needle in needles}, {needle: [] for needle in needles})

        # A touchpoint of theirs published before the erasure but read after it (in flight): sealed under a key that
        # is gone, so every consumer drops it as erased - it does not bring the customer back.
        erased_before = await _erased_count(pipeline, client)
        await _redeliver(pipeline, in_flight)
        await eventually(lambda: _erased_count(pipeline, client, above=erased_before), timeout_s=60,
                         what="the in-flight record dropped as erased")
        assert await pipeline.get(client, "stage-engine", f"/v1/customers/{user}") is None
        assert await pipeline.get(client, "stage-engine", f"/v1/customers/{anon}") is None

        again = await client.post(pipeline.url("stage-engine") + "/v1/admin/erasures", json={"id": user},
                                  headers=admin)
        assert again.status_code == 200 and again.json() == report, again.text
        unknown = await client.post(pipeline.url("stage-engine") + "/v1/admin/erasures",
                                    json={"id": f"nobody-{h}"}, headers=admin)
        assert unknown.status_code == 404
