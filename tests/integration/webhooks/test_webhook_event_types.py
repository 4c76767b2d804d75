"""Message, loyalty, unsubscribe and endpoint-disabled events fanned out once to the endpoints that want
them, never carrying the address."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from lifecycle_messaging.consenting import Told, tell
from lifecycle_messaging.db import latest
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.db import webhooks as db
from lifecycle_messaging.db.models import messages, webhook_cursors
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.handlers.webhooks import handle_webhooks
from lifecycle_messaging.workers.webhooks import announce_message_events
from lifecycle_shared.events import (
    REWARD_REDEEMED_TYPE,
    STAGE_CHANGED_TYPE,
    TIER_CHANGED_TYPE,
    TierChangedData,
)
from lifecycle_shared.kafka.registry import Typed

from tests.support.messaging import freshness_at
from tests.support.webhook_delivery import (
    EVENT_TIME,
    Clock,
    add_endpoint,
    consume,
    deliveries,
    endpoint_row,
    loyalty_event,
    settings,
    signed_by,
    stage_change,
    verify,
    worker_rounds,
)
from tests.support.webhook_receivers import Reply, always, receiver


async def test_message_sent_is_announced_once_per_message_to_the_endpoints_that_want_it(engine):
    clock, config = Clock(), settings()

    async def send_message(stage: str) -> str:
        message_id = str(uuid.uuid4())
        async with engine.begin() as conn:
            await repo.add_messages(conn, [{
                "id": message_id, "customer_id": f"c-{message_id[:8]}", "linked_ids": [], "template": "welcome",
                "stage": stage, "cause_event_id": message_id, "recipient": "ann@example.com", "subject": "Hi",
                "body": "Hello", "status": "queued"}])
            await repo.mark_sent(conn, message_id=message_id)
        return message_id

    async with engine.begin() as conn:
        await conn.execute(webhook_cursors.delete())
    before_anyone_listened = await send_message("awareness")
    async with engine.begin() as conn:  # sent a while ago, beyond the look-back
        await conn.execute(messages.update().where(messages.c.id == before_anyone_listened)
                           .values(sent_at=clock() - timedelta(minutes=5)))
    await announce_message_events(engine, now=clock())  # nobody subscribed: the cursor follows the clock
    async with receiver(always(Reply(200))) as every, receiver(always(Reply(200))) as buyers:
        all_sent = await add_endpoint(engine, every.url, event_types=["message.sent"])
        purchase_only = await add_endpoint(engine, buyers.url, event_types=["message.sent"], stages=["purchase"])
        welcome, thanks = await send_message("awareness"), await send_message("purchase")
        clock.advance(1)
        for _ in range(2):  # looking again announces nothing twice
            await announce_message_events(engine, now=clock())
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()
        told = sorted(verify(r, all_sent.secret)["data"]["message_id"] for r in every.requests)
        assert told == sorted([welcome, thanks]) and before_anyone_listened not in told
        (only,) = buyers.requests
        body = verify(only, purchase_only.secret)
        assert body["type"] == "message.sent" and body["data"]["message_id"] == thanks
        assert body["data"]["stage"] == "purchase" and "recipient" not in body["data"]
        assert "ann@example.com" not in only.body.decode()


async def test_suppressed_and_failed_messages_are_announced_once_each_with_why_and_never_the_address(engine):
    clock, config = Clock(), settings()

    async def message(stage: str, *, status: str = "queued", reason: str | None = None) -> str:
        message_id = str(uuid.uuid4())
        async with engine.begin() as conn:
            await repo.add_messages(conn, [{
                "id": message_id, "customer_id": f"c-{message_id[:8]}", "linked_ids": [], "template": "welcome",
                "stage": stage, "cause_event_id": message_id, "recipient": "bob@example.com", "subject": "Hi",
                "body": "Hello", "status": status, "suppressed_reason": reason}])
        return message_id

    async def fail(message_id: str) -> None:
        async with engine.begin() as conn:
            await repo.mark_unsent(conn, message_id=message_id, reason="SMTPRecipientsRefused: bob@example.com",
                                   retry_in_s=None)

    async with engine.begin() as conn:
        await conn.execute(webhook_cursors.delete())
    failed_before = await message("awareness")
    await fail(failed_before)
    async with engine.begin() as conn:  # failed a while ago, beyond the look-back
        await conn.execute(messages.update().where(messages.c.id == failed_before)
                           .values(status_changed_at=clock() - timedelta(minutes=5)))
    await announce_message_events(engine, now=clock())  # nobody subscribed: the cursors follow the clock
    async with receiver(always(Reply(200))) as every, receiver(always(Reply(200))) as buyers:
        both = await add_endpoint(engine, every.url, event_types=["message.suppressed", "message.failed"])
        purchase_only = await add_endpoint(engine, buyers.url, event_types=["message.suppressed"],
                                           stages=["purchase"])
        at_queue_time = await message("purchase", status="suppressed", reason="superseded")  # the handler's way
        stale = await message("awareness")
        async with engine.begin() as conn:  # the delivery worker's way
            assert await latest.suppress(conn, {stale: "stale"}) == [stale]
        failed, retried, sent = await message("purchase"), await message("purchase"), await message("purchase")
        await fail(failed)
        async with engine.begin() as conn:
            await repo.mark_unsent(conn, message_id=retried, reason="timeout", retry_in_s=60)  # not failed yet
            await repo.mark_sent(conn, message_id=sent)
        clock.advance(1)
        for _ in range(2):  # looking again announces nothing twice
            await announce_message_events(engine, now=clock())
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()
        told = {(body["type"], body["data"]["message_id"]): body
                for body in (verify(r, both.secret) for r in every.requests)}
        ours = {failed_before, at_queue_time, stale, failed, retried, sent}  # other tests' rows may show too
        mine = {key: body for key, body in told.items() if key[1] in ours}
        assert sorted(mine) == sorted([("message.suppressed", at_queue_time), ("message.suppressed", stale),
                                       ("message.failed", failed)])
        assert len(every.requests) == len(told)  # once each
        assert mine["message.suppressed", stale]["data"]["reason"] == "stale"
        assert mine["message.suppressed", at_queue_time]["data"]["reason"] == "superseded"
        failure = mine["message.failed", failed]
        assert failure["data"]["attempts"] == 0 and failure["data"]["failed_at"] == failure["timestamp"]
        assert set(failure["data"]) == {"message_id", "customer_id", "user_id", "template", "stage", "channel",
                                        "cause_event_id", "attempts", "failed_at"}
        for request in every.requests:
            assert b"bob@example.com" not in request.body and b"Hello" not in request.body
        to_buyers = [verify(r, purchase_only.secret)["data"]["message_id"] for r in buyers.requests]
        assert [m for m in to_buyers if m in ours] == [at_queue_time]



async def test_loyalty_events_are_fanned_out_once_to_the_endpoints_subscribed_to_them_and_to_no_others(engine):
    clock, config = Clock(), settings()
    customer = f"c-{uuid.uuid4().hex[:8]}"
    redeemed = loyalty_event(REWARD_REDEEMED_TYPE, customer, {
        "redemption_id": "rd-1", "reward_id": "free-shipping", "reward_kind": "free_shipping", "cost": 500,
        "redeemed_at": EVENT_TIME.isoformat()})
    tier = loyalty_event(TIER_CHANGED_TYPE, customer, {
        "from_tier": "silver", "to_tier": "gold", "direction": "reached", "points_in_window": 2400,
        "rule_version": "2026-11-20", "changed_at": EVENT_TIME.isoformat()})
    async with (receiver(always(Reply(200))) as tiers, receiver(always(Reply(200))) as rewards,
                receiver(always(Reply(200))) as stages):
        tier_endpoint = await add_endpoint(engine, tiers.url, event_types=[TIER_CHANGED_TYPE])
        # The stage filter is about stage moves and messages: it does not hold back a loyalty event.
        reward_endpoint = await add_endpoint(engine, rewards.url, stages=["purchase"],
                                             event_types=[REWARD_REDEEMED_TYPE, STAGE_CHANGED_TYPE])
        await add_endpoint(engine, stages.url, event_types=[STAGE_CHANGED_TYPE, "message.sent"])
        await consume(engine, [redeemed, tier])
        await consume(engine, [tier, redeemed])  # redelivered by Kafka: the inbox has them already
        async with engine.begin() as conn:  # and past the inbox (a lost commit): the same webhook-ids
            await handle_webhooks(conn, [Typed(tier, TierChangedData.model_validate(tier.data))])
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()
        (told_tier,) = tiers.requests
        body = verify(told_tier, tier_endpoint.secret)
        assert body["type"] == TIER_CHANGED_TYPE and body["timestamp"] == "2026-05-01T00:00:00Z"
        assert body["data"] == {**tier.data, "changed_at": "2026-05-01T00:00:00Z"}
        (told_reward,) = rewards.requests
        body = verify(told_reward, reward_endpoint.secret)
        assert body["type"] == REWARD_REDEEMED_TYPE and body["data"]["redemption_id"] == "rd-1"
        assert body["data"]["customer_id"] == customer and body["data"]["cost"] == 500
        assert stages.requests == []
        assert {r.webhook_id for r in await deliveries(engine, tier_endpoint)} == {told_tier.headers["webhook-id"]}


async def test_an_unsubscribe_is_announced_once_with_its_source_and_never_the_address(engine):
    clock, config = Clock(), settings()
    ann, bob, cy = (f"c-{uuid.uuid4().hex[:8]}" for _ in range(3))

    async def told(*changes: Told, at) -> None:
        async with engine.begin() as conn:
            await tell(conn, list(changes), now=at)

    async with engine.begin() as conn:
        await conn.execute(webhook_cursors.delete())
    # Before anyone listened (a while ago, beyond the look-back): never announced.
    await told(Told(f"{cy}@example.com", "unsubscribed", "api", customer_id=cy), at=clock() - timedelta(minutes=5))
    await announce_message_events(engine, now=clock())  # nobody subscribed: the cursors follow the clock
    async with receiver(always(Reply(200))) as hooks, receiver(always(Reply(200))) as others:
        # The stage filter does not apply: an unsubscribe is about an address, not a message of a stage.
        endpoint = await add_endpoint(engine, hooks.url, event_types=["message.unsubscribed"], stages=["purchase"])
        await add_endpoint(engine, others.url, event_types=["message.sent", "message.suppressed"])
        await told(Told(f"{ann}@example.com", "unsubscribed", "link", reference=str(uuid.uuid4()), customer_id=ann),
                   Told(f"{bob}@example.com", "subscribed", "api", customer_id=bob),  # a yes: not announced
                   Told(f"{ann}@example.com", "unsubscribed", "link", customer_id=ann),  # no change: not logged
                   at=clock())
        await told(Told(f"{bob}@example.com", "bounced", "provider", customer_id=bob), at=clock())  # not an unsubscribe
        clock.advance(1)
        for _ in range(2):  # looking again announces nothing twice
            await announce_message_events(engine, now=clock())
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()
        bodies = [verify(r, endpoint.secret) for r in hooks.requests]
        mine = [b for b in bodies if b["data"]["customer_id"] in (ann, bob, cy)]  # other tests' changes may show
        assert len({r.headers["webhook-id"] for r in hooks.requests}) == len(hooks.requests)  # once each
        (body,) = mine
        at = (clock() - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
        assert body == {"type": "message.unsubscribed", "timestamp": at,
                        "data": {"customer_id": ann, "channel": "email", "purpose": "marketing", "source": "link",
                                 "previous_state": None, "unsubscribed_at": at}}
        for request in hooks.requests:
            assert b"@example.com" not in request.body
        assert [r for r in others.requests if json.loads(r.body)["type"] == "message.unsubscribed"] == []


async def test_a_disabled_endpoint_is_told_to_the_operator_by_email_and_to_the_endpoints_that_want_it(
        engine, mail_sink):
    sink, smtp_port = mail_sink
    operator = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    clock = Clock()
    config = settings(operator_email=operator, smtp_port=smtp_port)
    async with receiver(always(Reply(410))) as gone, receiver(always(Reply(500))) as failing, \
            receiver(always(Reply(200))) as watcher:
        dead = await add_endpoint(engine, gone.url + "/hooks?token=s3cret", description="CRM stage sync")
        dying = await add_endpoint(engine, failing.url)
        watching = await add_endpoint(engine, watcher.url, event_types=["webhook.endpoint_disabled"])
        await consume(engine, [stage_change("purchase")])
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()  # 410: disabled at once
            assert (await endpoint_row(engine, dead)).status == "disabled"
            clock.at = (await endpoint_row(engine, dying)).failing_since + timedelta(days=5)
            await consume(engine, [stage_change("purchase")])
            await run_round()  # every attempt failed for five days: disabled
            assert (await endpoint_row(engine, dying)).status == "disabled"
            await run_round()
        assert all(signed_by(r, watching.secret) for r in watcher.requests)  # the clock is 5 days on
        told = [json.loads(r.body) for r in watcher.requests]
        assert [body["type"] for body in told] == ["webhook.endpoint_disabled"] * 2
        by_id = {body["data"]["endpoint_id"]: body["data"] for body in told}
        assert by_id[dead.id]["why"] == "gone" and by_id[dead.id]["url_host"] == "127.0.0.1"
        assert by_id[dying.id]["why"] == "failing" and by_id[dying.id]["failing_since"] is not None
        assert all("s3cret" not in r.body.decode() and "/hooks" not in r.body.decode() for r in watcher.requests)

    # The notices go through messaging's own email queue, judged a month later: every customer's message
    # still queued is stale by then, the operator's notices are about no transition and go.
    month_later = freshness_at(datetime.now(UTC) + timedelta(days=30))
    while await deliver_once(SimpleNamespace(engine=engine), config, month_later):
        pass
    notices = sink.to(operator)
    assert len(notices) == 2
    about_dead = next(m for m in notices if dead.id in m["Subject"])
    text = about_dead.get_payload(decode=True).decode()
    assert "127.0.0.1" in about_dead["Subject"] and dead.id in text and "410" in text and "CRM stage sync" in text
    assert "s3cret" not in about_dead.as_string() and "/hooks" not in text
    async with engine.connect() as conn:  # not announced as a customer's message either
        sent = await db.messages_since(conn, "message.sent", datetime.now(UTC) - timedelta(minutes=5), limit=10_000)
    assert not [row for row in sent if row.customer_id == "lifecycle:operator"]


async def test_without_an_operator_address_a_disabled_endpoint_queues_no_email(engine):
    clock, config = Clock(), settings()
    async with receiver(always(Reply(410))) as gone:
        dead = await add_endpoint(engine, gone.url)
        await consume(engine, [stage_change("purchase")])
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()
    assert (await endpoint_row(engine, dead)).status == "disabled"
    async with engine.connect() as conn:
        notices = (await conn.execute(messages.select().where(messages.c.cause_event_id.contains(dead.id)))).all()
    assert notices == []
