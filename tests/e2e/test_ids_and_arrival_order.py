"""Arrival order and ids across the whole pipeline: a sign-up's address reaches the messages that
waited for it however the topics interleave; messageIds are scoped per source; a messageId reused
for another event is counted, not silently merged."""

from __future__ import annotations

import asyncio
import uuid

from lifecycle_devstack.services import BY_NAME, run_module
from lifecycle_shared.testing import eventually, make_touchpoint

from tests.support.pipeline import wait_until_key_works

TRIALS = 10


def visit_and_sign_up(visitor: str, user: str) -> list[dict]:
    return [make_touchpoint(type="page", event=None, name="Home", anonymousId=visitor),
            make_touchpoint(event="Product Viewed", anonymousId=visitor),
            make_touchpoint(event="Signed Up", anonymousId=visitor, userId=user,
                            context={"traits": {"email": f"{user}@example.com"}})]


async def test_messages_waiting_for_an_address_go_out_whatever_the_arrival_order(pipeline):
    run = uuid.uuid4().hex[:6]
    people = [(f"v-{run}-{n}", f"u-{run}-{n}") for n in range(2 * TRIALS)]
    async with pipeline.client() as client:
        async def one_batch(visitor: str, user: str) -> None:
            assert (await pipeline.send(client, *visit_and_sign_up(visitor, user))).status_code == 200

        async def two_quick_requests(visitor: str, user: str) -> None:
            events = visit_and_sign_up(visitor, user)
            assert (await pipeline.send(client, *events[:2])).status_code == 200
            assert (await pipeline.send(client, events[2])).status_code == 200

        await asyncio.gather(*(one_batch(*p) for p in people[:TRIALS]),
                             *(two_quick_requests(*p) for p in people[TRIALS:]))

        latest: dict[str, list] = {}

        async def none_waiting():
            logs = await asyncio.gather(*(pipeline.get(client, "messaging", f"/v1/customers/{u}/messages")
                                          for _, u in people))
            latest.update({u: [(m["template"], m["status"]) for m in log or []]
                           for (_, u), log in zip(people, logs, strict=True)})
            # Which transitions exist depends on the stage engine's view (the sign-up is keyed by the
            # userId, the visits by the anonymousId); the nudge for where they stand goes out, and every
            # other message that exists is sent or suppressed (overtaken by the nudge) - none left waiting.
            return all(d and ("consideration_nudge", "sent") in d and all(s in ("sent", "suppressed") for _, s in d)
                       for d in latest.values())

        try:
            await eventually(none_waiting, timeout_s=60, what="every trial's messages sent")
        except AssertionError:
            raise AssertionError(f"messages not sent: {latest}") from None
        for visitor, user in people:  # found under either id, and each reached the mailbox once
            by_visitor = await pipeline.get(client, "messaging", f"/v1/customers/{visitor}/messages")
            assert [(m["template"], m["status"]) for m in by_visitor] == latest[user]
            assert len(pipeline.mail.to(f"{user}@example.com")) == sum(s == "sent" for _, s in latest[user])


async def test_the_same_message_id_from_two_sources_is_two_events(pipeline):
    run = uuid.uuid4().hex[:6]
    pos_key = run_module(BY_NAME["ingest"], pipeline.config, "create-key", f"pos-{run}", "--server").strip()
    wait_until_key_works(pipeline.url("ingest"), pos_key)
    message_id = f"order-{run}"  # both storefronts number their events the same way
    web_order = make_touchpoint(event="Order Completed", userId=f"web-{run}", messageId=message_id,
                                properties={"order_id": "1", "revenue": 10})
    pos_order = make_touchpoint(event="Order Completed", userId=f"pos-{run}", messageId=message_id,
                                properties={"order_id": "1", "revenue": 20})
    async with pipeline.client() as client:
        assert (await pipeline.send(client, web_order)).status_code == 200
        response = await client.post(pipeline.url("ingest") + "/v1/batch", json={"batch": [pos_order]},
                                     auth=(pos_key, ""))
        assert response.status_code == 200

        for customer, revenue in ((f"web-{run}", 10), (f"pos-{run}", 20)):
            async def bought(customer=customer):
                profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{customer}")
                return profile if profile and profile["orders"] == 1 else None

            assert (await eventually(bought, what=f"{customer}'s order"))["revenue"] == revenue


async def test_a_message_id_reused_for_another_event_is_counted_and_the_first_stays(pipeline):
    run = uuid.uuid4().hex[:6]
    user, message_id = f"reuse-{run}", f"m-{run}"
    first = make_touchpoint(event="Order Completed", userId=user, messageId=message_id,
                            properties={"order_id": "o1", "revenue": 10})
    other = make_touchpoint(event="Order Completed", userId=user, messageId=message_id,
                            properties={"order_id": "o2", "revenue": 99})
    engine = pipeline.url("stage-engine")
    async with pipeline.client() as client:
        before = await _conflicts(client, engine)
        assert (await pipeline.send(client, first)).status_code == 200
        assert (await pipeline.send(client, first)).status_code == 200  # a retry: not a conflict
        assert (await pipeline.send(client, other)).status_code == 200

        async def counted():
            return await _conflicts(client, engine) >= before + 1

        await eventually(counted, what="the conflict to be counted")
        assert await _conflicts(client, engine) == before + 1
        profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{user}")
    assert (profile["orders"], profile["revenue"]) == (1, 10)
    log = pipeline.processes["stage-engine"].log_path.read_text()
    assert "event id reused for a different event" in log


async def _conflicts(client, url: str) -> float:
    text = (await client.get(url + "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("lifecycle_duplicate_conflicts_total{"))
