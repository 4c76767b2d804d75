"""Webhooks through the whole pipeline: storefront events -> stage engine -> messaging -> a local receiver,
registered through messaging's admin API; messaging SIGKILLed mid-delivery loses none and re-delivers with
the same webhook-ids; every request verified by the `standardwebhooks` library."""

from __future__ import annotations

import uuid

import httpx
from lifecycle_shared.testing import eventually, make_touchpoint
from standardwebhooks import Webhook

from tests.support.webhook_receivers import Reply, always, receiver


async def test_messaging_killed_mid_delivery_delivers_every_event_at_least_once_with_stable_ids(pipeline):
    run = uuid.uuid4().hex[:6]
    customers = [f"hook-{run}-{n}" for n in range(60)]
    admin = {"authorization": f"Bearer {pipeline.admin_token}"}
    messaging = pipeline.processes["messaging"]
    async with receiver(always(Reply(200, delay_s=0.05))) as target, pipeline.client() as client:
        created = await client.post(messaging.url + "/v1/admin/webhooks", headers=admin, json={
            "url": target.url, "event_types": ["lifecycle.stage_changed"], "stages": ["awareness"],
            "description": "e2e receiver"})
        assert created.status_code == 201, created.text
        endpoint = created.json()
        try:
            events = [make_touchpoint(type="page", event=None, anonymousId=None, userId=c) for c in customers]
            for start in range(0, len(events), 20):
                assert (await pipeline.send(client, *events[start:start + 20])).status_code == 200
            await target.until(5, timeout_s=60)
            messaging.kill()  # mid-stream: some delivered, one perhaps in flight, the rest queued
            messaging.start()
            messaging.wait_ready()

            def ours() -> dict[str, set[str]]:
                """customer -> the webhook-ids their awareness move arrived under."""
                seen: dict[str, set[str]] = {}
                for request in list(target.requests):
                    body = Webhook(endpoint["secret"]).verify(request.body, request.headers)
                    if body["data"]["customer_id"] in customers:
                        seen.setdefault(body["data"]["customer_id"], set()).add(request.headers["webhook-id"])
                return seen

            async def all_arrived() -> dict[str, set[str]] | None:
                found = ours()
                return found if len(found) == len(customers) else None

            seen = await eventually(all_arrived, timeout_s=120, interval_s=0.5, what="every awareness webhook")
            assert all(len(ids) == 1 for ids in seen.values())  # a re-delivery carries the same id
            assert len({i for ids in seen.values() for i in ids}) == len(customers)
            async def all_recorded() -> list[dict] | None:  # the last answers' outcomes are being written
                log = (await client.get(f"{messaging.url}/v1/admin/webhooks/{endpoint['id']}/deliveries",
                                        params={"limit": 500, "status": "delivered"}, headers=admin)).json()
                return log if len(log) >= len(customers) else None

            await eventually(all_recorded, timeout_s=30, what="every delivery recorded as delivered")
            print(f"{len(target.requests)} requests for {len(customers)} events (re-deliveries after the kill: "
                  f"{len(target.requests) - len({r.headers['webhook-id'] for r in target.requests})})")
        finally:
            await client.delete(f"{messaging.url}/v1/admin/webhooks/{endpoint['id']}", headers=admin)


async def test_the_admin_api_needs_the_admin_token(pipeline):
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(pipeline.url("messaging") + "/v1/admin/webhooks")
        assert answer.status_code == 401
