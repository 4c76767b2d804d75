"""From ingest to a redeemed reward: an order POSTed to ingest with the server key, its points in loyalty's
ledger, a reward redeemed through loyalty's API, and the `loyalty.reward_redeemed` event read from
loyalty-events.v1 with the CloudEvents SDK (our records are in structured JSON mode)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from cloudevents.core.bindings.kafka import KafkaMessage, from_structured
from cloudevents.core.formats.json import JSONFormat
from lifecycle_shared.events import REWARD_REDEEMED_TYPE
from lifecycle_shared.testing import eventually, read_topic

from tests.support.pipeline import bearer
from tests.support.topics import opened


async def test_an_order_through_ingest_buys_a_reward_and_the_event_is_on_the_topic(pipeline):
    user = f"e2e-redeem-{uuid.uuid4().hex[:8]}"
    reward = f"r-{uuid.uuid4().hex[:8]}"
    # Placed 20 days ago: past loyalty's 14 pending days (the return window), so the points are available.
    placed = (datetime.now(UTC) - timedelta(days=20)).isoformat()
    async with pipeline.client() as client:
        answer = await pipeline.send(client, {"type": "track", "event": "Order Completed", "userId": user,
                                              "messageId": f"{user}-order", "timestamp": placed,
                                              "properties": {"order_id": "o-1", "revenue": 120, "currency": "USD"}})
        assert answer.status_code == 200, answer.text

        async def available():
            balance = await pipeline.get(client, "loyalty", f"/v1/customers/{user}/balance")
            return balance if balance and balance["available"] >= 100 else None

        await eventually(available, timeout_s=60, what="the order's points available")
        loyalty = pipeline.url("loyalty")
        put = await client.put(f"{loyalty}/v1/admin/rewards/{reward}", headers=bearer(pipeline.admin_token),
                               json={"name": "Free shipping", "kind": "free_shipping", "cost": 100})
        assert put.status_code == 200, put.text
        redeemed = await client.post(f"{loyalty}/v1/customers/{user}/redemptions", json={"reward_id": reward},
                                     headers={**bearer(pipeline.api_token), "Idempotency-Key": str(uuid.uuid4())})
        assert redeemed.status_code == 201, redeemed.text
        redemption = redeemed.json()
        balance = await pipeline.get(client, "loyalty", f"/v1/customers/{user}/balance")
        assert balance["available"] == 20

    topic = pipeline.config.topic_prefix + "loyalty-events.v1"
    redeemed = []

    async def published():
        records = await read_topic(pipeline.config.kafka_bootstrap, topic, timeout_s=5)
        redeemed[:] = [(r, e) for r, e in await opened([r for r in records if b"reward_redeemed" in r.value], pipeline)
                       if e is not None and e.subject == user]
        return redeemed or None

    await eventually(published, timeout_s=60, what="the reward_redeemed event")
    (record, clear), = redeemed
    # The record as on the broker (sealed: docs/erasure.md) reads with the CloudEvents SDK as a marketing tool
    # would; opened with its key, it is the event documented.
    sealed = from_structured(KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value),
                             JSONFormat())
    assert sealed.get_type() == REWARD_REDEEMED_TYPE and sealed.get_subject() == record.key.decode() != user
    event = from_structured(KafkaMessage(headers=dict(record.headers), key=user.encode(), value=clear.to_bytes()),
                            JSONFormat())
    assert event.get_type() == REWARD_REDEEMED_TYPE and event.get_subject() == user
    data = event.get_data()
    assert (data["customer_id"], data["reward_id"], data["reward_kind"], data["cost"]) == (
        user, reward, "free_shipping", 100)
    assert data["redemption_id"] == redemption["id"]
