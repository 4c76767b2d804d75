"""Nasty-but-valid payloads are accepted and applied by every consumer, nothing lands in a DLQ;
invalid ones are refused at the edge naming the field; personal data never reaches a log line
or a DLQ header, even when a record fails downstream."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from lifecycle_shared.events import CloudEvent
from lifecycle_shared.testing import eventually, read_topic

from tests.support.topics import opened


def deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"x": value}
    return value


def corpus(run: str) -> list[tuple[dict[str, Any], int | None]]:
    """(event, points it should earn) for events ingest must accept; ids unique to this run."""
    def user(n: int) -> str:
        return f"nasty-{run}-{n}"

    def order(n: int, revenue: Any, points: int, **extra) -> tuple[dict, int]:
        return ({"type": "track", "event": "Order Completed", "userId": user(n),
                 "properties": {"order_id": f"o-{n}", "revenue": revenue, **extra}}, points)

    return [
        ({"type": "identify", "userId": user(0), "traits": {"firstName": "Nguyễn Thị Ánh", "lastName": "สมชาย",
                                                            "email": f"{user(0)}@example.com"}}, None),
        ({"type": "track", "event": "Product Viewed 🎉", "anonymousId": user(1),
          "properties": {"name": "‮RTL‬ e\u0301 Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗", "emoji": "\U0001F600" * 500}}, None),
        ({"type": "page", "anonymousId": user(2), "name": "Home",
          "properties": {"long": "x" * 20_000, "control": "\x01\x1f\x7f"}}, None),
        ({"type": "track", "event": "Product Added", "anonymousId": user(3),
          "properties": {"quantity": 10**40, "tiny": 5e-324, "big": 1.7e308, "neg": -(2**63), "zero": -0.0}}, None),
        ({"type": "track", "event": "Deep", "anonymousId": user(4), "properties": {"d": deep(29)}}, None),
        ({"type": "track", "event": "Keys", "anonymousId": user(5),
          "properties": {"": "empty key", "a.b": 1, "with space": 2, "ключ": 3, "$where": 4, "__proto__": 5}}, None),
        ({"type": "screen", "anonymousId": user(6), "name": None,
          "properties": {"list": [[[[]]]], "null": None}}, None),
        ({"type": "identify", "userId": 12345678901234567890123, "traits": {"phone": "+66 81 234 5678"}}, None),
        ({"type": "track", "event": "Historic", "anonymousId": user(8), "timestamp": "1997-01-01T00:00:00Z"}, None),
        ({"type": "track", "event": "Future", "anonymousId": user(9), "timestamp": "2999-01-01T00:00:00Z"}, None),
        ({"type": "alias", "userId": user(10), "previousId": f"{user(10)}-anon"}, None),
        ({"type": "group", "userId": user(11), "groupId": 42, "traits": {"name": "ACME ™"}}, None),
        order(12, 3_000_000_000, 3_000_000_000),  # VND: past int32
        order(13, "12.50", 12),
        order(14, 1e-300, 0),
        order(15, 999_999_999_999_999, 999_999_999_999_999),
        order(16, -5, 0),
        order(17, 19.99, 19, products=[{"sku": "ሀ", "price": 1e-7, "quantity": 2**31}]),
        order(18, "1e-20000", 0),  # below a millionth: PostgreSQL's numeric could not hold its exponent
        order(19, "12.99999999999999999999999999999", 12),  # whole units, rounded down
        # A name too long to travel in every stage transition: accepted, the profile does not keep it
        ({"type": "identify", "userId": user(20), "traits": {"firstName": "F" * 100_000}}, None),
    ]


def refused(run: str) -> list[tuple[dict[str, Any], str]]:
    """(event, field at fault) for events ingest must refuse."""
    base = {"type": "track", "event": "X", "anonymousId": f"refused-{run}"}
    return [({**base, "properties": {"note": "a\x00b"}}, "properties.note"),
            ({**base, "properties": {"t": "\ud83d"}}, "properties.t"),
            ({**base, "properties": {"revenue": float("nan")}}, "properties.revenue"),
            ({**base, "properties": {"revenue": "Infinity"}}, "properties.revenue"),
            ({**base, "properties": {"revenue": 10**16}}, "properties.revenue"),
            ({**base, "properties": deep(40)}, "properties" + ".x" * 31),
            ({**base, "userId": True}, "userId"),
            ({**base, "context": {"traits": "ann@example.com"}}, "context.traits"),
            ({**base, "properties": {"order_id": "o" * 300}}, "properties.order_id"),
            ({**base, "originalTimestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"},
             "originalTimestamp")]


async def test_every_accepted_nasty_payload_is_applied_and_no_dlq_gets_any(pipeline):
    run = uuid.uuid4().hex[:6]
    accepted, rejected = corpus(run), refused(run)
    async with pipeline.client() as client:
        response = await client.post(pipeline.url("ingest") + "/v1/batch", auth=(pipeline.write_key, ""),
                                     content=_json([event for event, _ in accepted + rejected]),
                                     headers={"content-type": "application/json"})
        assert (response.status_code, response.json()["code"]) == (400, "partially_rejected"), response.text
        body = response.json()
        assert body["accepted"] == len(accepted) == len(body["messageIds"])
        assert [(r["index"], [e["field"] for e in r["errors"]]) for r in body["rejected"]] == [
            (len(accepted) + i, [field]) for i, (_, field) in enumerate(rejected)]

        keys = [_key(event) for event, _ in accepted]

        async def all_applied():
            found = await asyncio.gather(*(pipeline.get(client, "stage-engine", f"/v1/customers/{k}") for k in keys))
            return all(found) and found

        profiles = dict(zip(keys, await eventually(all_applied, what="a profile for every accepted event"),
                            strict=True))
        orders = [(_key(event), points) for event, points in accepted if points is not None]
        assert all(profiles[key]["orders"] == 1 for key, _ in orders)
        await eventually(lambda: _balances_are(pipeline, client, orders), what="every order's points")
        assert math.isclose(profiles[f"nasty-{run}-12"]["revenue"], 3e9)

    for topic in ("touchpoints.v1.dlq", "stage-transitions.v1.dlq"):
        dead = await read_topic(pipeline.config.kafka_bootstrap, pipeline.config.topic_prefix + topic, timeout_s=3)
        # Sealed records are keyed by their data key's id: what they are about shows once opened.
        readable = await opened(dead, pipeline)
        assert not [event for _, event in readable if event is None or event.subject in keys], topic


async def test_personal_data_never_reaches_logs_or_dlq_headers_even_when_records_fail(pipeline):
    run = uuid.uuid4().hex[:6]
    email, phone, name = f"pii.{run}@example.com", f"+84 90 {run[:3]} {run[3:]}", f"Bích-{run}"
    user = f"pii-{run}"
    traits = {"email": email, "phone": phone, "firstName": name}
    async with pipeline.client() as client:
        assert (await pipeline.send(client, {"type": "identify", "userId": user, "traits": traits},
                                    {"type": "track", "event": "Signed Up", "userId": user,
                                     "context": {"traits": traits}})).status_code == 200
        # Records that never came through ingest, as a buggy or hostile producer might write them: one
        # breaks the contract, one carries a NUL that PostgreSQL refuses (its error quotes the row).
        topic = pipeline.config.topic_prefix + "touchpoints.v1"
        envelope = {"source": "/tests", "type": "touchpoint.identify", "time": "2026-01-01T00:00:00Z", "subject": user}
        broken = CloudEvent(id=str(uuid.uuid4()), **envelope,
                            data={"type": "identify", "traits": traits, "userId": {"not": email}, email: phone})
        nul = CloudEvent(id=str(uuid.uuid4()), **envelope, data={"type": "identify", "userId": user, "messageId": "m",
                                             # in the name: an unverified event may not replace the email
                                             "traits": {**traits, "firstName": name + "\x00"},
                                             "timestamp": "2026-01-01T00:00:00Z", "receivedAt": "2026-01-01T00:00:00Z"})
        producer = AIOKafkaProducer(bootstrap_servers=pipeline.config.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for event in (broken, nul):
                await producer.send_and_wait(topic, event.to_bytes(), key=user.encode(), headers=event.kafka_headers())
        finally:
            await producer.stop()
        # the stage engine dead-letters both; messaging the broken one (it keeps no name)
        dead = await eventually(lambda: _dead_letters(pipeline, topic, user, count=3), timeout_s=60,
                                what="three dead letters")
        await eventually(lambda: _emails(pipeline, email), what="the emails for the customer")
    headers = b"\n".join(value for record in dead for _, value in record.headers)
    assert b"PermanentError" in headers and b"SQLSTATE" in headers
    logs = "\n".join(p.log_path.read_text(errors="replace") for p in pipeline.processes.values())
    assert "record sent to DLQ" in logs
    for secret in (email, phone, name, run[:3] + " " + run[3:]):
        assert secret.encode() not in headers, f"{secret!r} in a DLQ header"
        assert secret not in logs and _escaped(secret) not in logs, f"{secret!r} in a service log"


async def _balances_are(pipeline, client, expected: list[tuple[str, int]]) -> bool:
    balances = await asyncio.gather(*(pipeline.get(client, "loyalty", f"/v1/customers/{key}/balance")
                                      for key, _ in expected))
    # an order worth 0 points earns no entry: its application shows in the stage engine's profile
    return all(b and b["balance"] == points and b["entries"] == (1 if points else 0)
               for b, (_, points) in zip(balances, expected, strict=True))


async def _dead_letters(pipeline, topic: str, key: str, *, count: int):
    dead = [r for r in await read_topic(pipeline.config.kafka_bootstrap, topic + ".dlq", timeout_s=2)
            if r.key == key.encode()]
    return dead if len(dead) >= count else None


async def _emails(pipeline, address: str):
    return pipeline.mail.to(address) or None


def _key(event: dict) -> str:
    return str(event.get("userId") or event.get("anonymousId"))


def _json(batch: list[dict]) -> bytes:
    import json

    return json.dumps({"batch": batch}, allow_nan=True).encode()  # ASCII: surrogates and NUL as \u escapes


def _escaped(text: str) -> str:
    import json

    return json.dumps(text)[1:-1]
