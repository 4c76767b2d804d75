"""Webhook fan-out and delivery against real PostgreSQL and real local HTTP receivers (tests/support/
webhook_receivers.py): every signature verified by the `standardwebhooks` library, unmodified; the retry
schedule on a clock the test moves; a blackholed endpoint's backlog never holding up a fast one; leases
giving at-least-once with stable webhook-ids; the address guard of production mode."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.consenting import Told, tell
from lifecycle_messaging.db import latest
from lifecycle_messaging.db import repository as repo
from lifecycle_messaging.db import webhooks as db
from lifecycle_messaging.db.models import messages, webhook_cursors, webhook_endpoints
from lifecycle_messaging.delivery import deliver_once
from lifecycle_messaging.domain.webhooks import SCHEDULE_S, SECRET_BYTES, new_secret
from lifecycle_messaging.handlers import routes_and_webhooks
from lifecycle_messaging.handlers.webhooks import handle_webhooks
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.workers.webhook_http import AddressRefused, GuardedTransport, WebhookClient, system_resolve
from lifecycle_messaging.workers.webhooks import announce_message_events, client_for, deliver_round, webhook_worker
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import (
    IDENTITY_MERGED_TYPE,
    REWARD_REDEEMED_TYPE,
    STAGE_CHANGED_TYPE,
    TIER_CHANGED_TYPE,
    CloudEvent,
    StageChangedData,
    TierChangedData,
)
from lifecycle_shared.kafka.registry import Typed
from lifecycle_shared.kafka.runner import ConsumerRunner
from standardwebhooks import Webhook

from tests.support.kafka_records import record
from tests.support.messaging import freshness_at
from tests.support.webhook_receivers import Reply, always, first_then, receiver, self_signed

EVENT_TIME = datetime(2026, 5, 1, tzinfo=UTC)


class Clock:
    """The worker's clock: frozen where the test puts it."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC) + timedelta(seconds=1)  # after the rows the database stamped `now()`

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def namespace(infra):
    config = infra.stack_config()
    infra.prepare(config, services=[BY_NAME["messaging"]])
    return config


@pytest.fixture
async def engine(namespace):
    engine = create_engine(namespace.database_url(BY_NAME["messaging"]))
    async with engine.begin() as conn:
        await conn.execute(webhook_endpoints.delete())  # each test owns the endpoints (deliveries cascade)
    yield engine
    await engine.dispose()


@asynccontextmanager
async def worker_rounds(engine, config: MessagingSettings, clock: Clock, *, draw=random.random):
    """`run_round()`: one round of the delivery worker on the test's clock, with one client for them all."""
    client = client_for(config)
    try:
        yield lambda: deliver_round(engine, client, config, clock=clock, draw=draw)
    finally:
        await client.aclose()


def settings(**overrides) -> MessagingSettings:
    return MessagingSettings(**{"environment": "development", "webhooks_timeout_s": 3.0, **overrides})


async def add_endpoint(engine, url: str, *, event_types=(STAGE_CHANGED_TYPE,), stages=None, status="active",
                       **fields) -> SimpleNamespace:
    secret = new_secret(uuid.uuid4().bytes + uuid.uuid4().bytes[:SECRET_BYTES - 16])
    async with engine.begin() as conn:
        row = await db.add_endpoint(conn, {"id": "ep_" + uuid.uuid4().hex, "url": url, "secret": secret,
                                           "event_types": list(event_types), "stages": stages, "status": status,
                                           **fields})
    return SimpleNamespace(id=row.id, secret=secret)


def stage_change(to_stage: str, *, customer: str | None = None, historical: bool = False,
                 event_id: str | None = None) -> CloudEvent:
    customer = customer or f"c-{uuid.uuid4().hex[:8]}"
    data = {"customer_id": customer, "user_id": customer, "anonymous_ids": [], "from_stage": None,
            "to_stage": to_stage, "reason": "r", "rule_version": "v", "cause_event_ids": ["c"],
            "event_time": EVENT_TIME.isoformat(), "processed_at": EVENT_TIME.isoformat(),
            "traits": {"email": f"{customer}@example.com"}, "historical": historical}
    return CloudEvent(id=event_id or str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE,
                      time=EVENT_TIME, subject=customer, data=data)


def merged(survivor: str, absorbed: str) -> CloudEvent:
    data = {"survivor_id": survivor, "absorbed_id": absorbed, "absorbed_ids": [absorbed], "user_id": survivor,
            "reason": "identify", "cause_event_ids": ["c"], "event_time": EVENT_TIME.isoformat(),
            "processed_at": EVENT_TIME.isoformat()}
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=IDENTITY_MERGED_TYPE, time=EVENT_TIME,
                      subject=survivor, data=data)


async def consume(engine, events: list[CloudEvent]) -> None:
    """Through the real runner and messaging's real routes (email handlers included), one polled batch."""
    runner = ConsumerRunner(name="webhooks-test", consumer=None, producer=None, engine=engine,
                            route=routes_and_webhooks(brand="Shop", freshness=freshness_at(EVENT_TIME)))
    await runner.process([record("topic", n, e.to_bytes(), key=e.subject.encode()) for n, e in enumerate(events)])


async def deliveries(engine, endpoint) -> list:
    async with engine.connect() as conn:
        return await db.deliveries_of(conn, endpoint.id)


async def endpoint_row(engine, endpoint):
    async with engine.connect() as conn:
        return await db.endpoint(conn, endpoint.id)


def verify(request, *secrets: str) -> dict:
    """The library's verdict (it checks the timestamp against the wall clock, ±5 minutes) with each secret."""
    bodies = [Webhook(secret).verify(request.body, request.headers) for secret in secrets]
    return bodies[0]


def signed_by(request, secret: str) -> bool:
    """For timestamps a moved clock made: the library's own signature over what was sent is among the header's."""
    stamp = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(request.headers["webhook-id"], stamp, request.body)
    return expected in request.headers["webhook-signature"].split(" ")


async def test_fan_out_queues_one_delivery_per_matching_endpoint_with_stable_ids(engine):
    every = await add_endpoint(engine, "http://127.0.0.1:9/every",
                               event_types=[STAGE_CHANGED_TYPE, IDENTITY_MERGED_TYPE])
    buyers = await add_endpoint(engine, "http://127.0.0.1:9/buyers", stages=["purchase"])
    merges = await add_endpoint(engine, "http://127.0.0.1:9/merges", event_types=[IDENTITY_MERGED_TYPE])
    paused = await add_endpoint(engine, "http://127.0.0.1:9/paused", status="paused")
    disabled = await add_endpoint(engine, "http://127.0.0.1:9/disabled", status="disabled")
    aware, bought, merge = stage_change("awareness"), stage_change("purchase"), merged("u1", "anon-1")
    imported = stage_change("purchase", historical=True)
    await consume(engine, [aware, bought, merge, imported])

    def of(rows):
        return sorted((r.event_id, r.status, r.attempts) for r in rows)

    assert of(await deliveries(engine, every)) == sorted((e.id, "pending", 0) for e in (aware, bought, merge))
    assert of(await deliveries(engine, buyers)) == [(bought.id, "pending", 0)]
    assert of(await deliveries(engine, merges)) == [(merge.id, "pending", 0)]
    assert of(await deliveries(engine, paused)) == sorted((e.id, "pending", 0) for e in (aware, bought))
    assert await deliveries(engine, disabled) == []
    body = json.loads((await deliveries(engine, buyers))[0].payload)
    assert body["type"] == STAGE_CHANGED_TYPE and body["timestamp"] == "2026-05-01T00:00:00Z"
    assert body["data"]["to_stage"] == "purchase" and body["data"]["customer_id"] == bought.subject

    # The same event again, past the inbox (a redelivery after a lost commit): nothing new, the same ids.
    before = {r.webhook_id for r in await deliveries(engine, every)}
    async with engine.begin() as conn:
        await handle_webhooks(conn, [Typed(bought, StageChangedData.model_validate(bought.data))])
    assert {r.webhook_id for r in await deliveries(engine, every)} == before


async def test_fast_slow_failing_rate_limited_and_gone_receivers(engine):
    clock, config = Clock(), settings()
    async with (receiver(always(Reply(200))) as fast, receiver(always(Reply(200, delay_s=1.0))) as slow,
                receiver(first_then(Reply(500), 1, Reply(200))) as flaky,
                receiver(first_then(Reply(429, headers=(("Retry-After", "120"),)), 1, Reply(204))) as limited,
                receiver(always(Reply(410))) as gone):
        endpoints = {name: await add_endpoint(engine, r.url)
                     for name, r in [("fast", fast), ("slow", slow), ("flaky", flaky), ("limited", limited),
                                     ("gone", gone)]}
        event = stage_change("purchase")
        await consume(engine, [event])
        async with worker_rounds(engine, config, clock, draw=lambda: 0.0) as run_round:
            await run_round()
            status = {name: [(d.status, d.attempts, d.last_status_code) for d in await deliveries(engine, ep)]
                      for name, ep in endpoints.items()}
            assert status == {"fast": [("delivered", 1, 200)], "slow": [("delivered", 1, 200)],
                              "flaky": [("pending", 1, 500)], "limited": [("pending", 1, 429)],
                              "gone": [("failed", 1, 410)]}
            assert (await deliveries(engine, endpoints["slow"]))[0].last_latency_ms >= 1000
            flaky_row = (await deliveries(engine, endpoints["flaky"]))[0]
            assert flaky_row.next_attempt_at == clock() + timedelta(seconds=5)
            limited_row = (await deliveries(engine, endpoints["limited"]))[0]
            assert limited_row.next_attempt_at == clock() + timedelta(seconds=120)
            gone_endpoint = await endpoint_row(engine, endpoints["gone"])
            assert gone_endpoint.status == "disabled" and "410" in gone_endpoint.disabled_reason

            clock.advance(6)  # the flaky one is due again, the rate-limited one is not
            await run_round()
            assert [(d.status, d.attempts) for d in await deliveries(engine, endpoints["flaky"])] == [("delivered", 2)]
            assert len(limited.requests) == 1
            clock.advance(120)
            await run_round()
            limited_rows = await deliveries(engine, endpoints["limited"])
            assert [(d.status, d.attempts) for d in limited_rows] == [("delivered", 2)]

            # A disabled endpoint takes no new events.
            await consume(engine, [stage_change("purchase")])
            assert len(await deliveries(engine, endpoints["gone"])) == 1

        for r in (fast, slow, flaky, limited, gone):
            assert len(set(r.ids())) == 1 and r.ids()[0].startswith("msg_")  # one webhook-id, on every retry
            for request in r.requests:
                secret = endpoints[next(n for n, x in [("fast", fast), ("slow", slow), ("flaky", flaky),
                                                        ("limited", limited), ("gone", gone)] if x is r)].secret
                body = verify(request, secret)
                assert body["data"]["to_stage"] == "purchase" and body["timestamp"] == "2026-05-01T00:00:00Z"
                assert request.headers["content-type"] == "application/json"


async def test_the_retry_schedule_on_a_moved_clock_then_give_up_and_disable_after_five_days(engine):
    clock, config = Clock(), settings()
    async with receiver(always(Reply(500))) as failing:
        endpoint = await add_endpoint(engine, failing.url)
        await consume(engine, [stage_change("awareness")])
        async with worker_rounds(engine, config, clock, draw=lambda: 0.0) as run_round:
            gaps = []
            for _ in range(len(SCHEDULE_S)):
                await run_round()
                (row,) = await deliveries(engine, endpoint)
                if row.status == "pending":
                    gaps.append((row.next_attempt_at - row.last_attempt_at).total_seconds())
                    clock.advance(gaps[-1] - 1)
                    await run_round()  # not due yet
                    clock.advance(1)
            assert gaps == list(SCHEDULE_S[1:])
            assert len(failing.requests) == len(SCHEDULE_S) == 8
            (row,) = await deliveries(engine, endpoint)
            assert (row.status, row.attempts, row.last_status_code) == ("failed", 8, 500)
            stamps = [int(r.headers["webhook-timestamp"]) for r in failing.requests]
            assert [b - a for a, b in zip(stamps, stamps[1:], strict=False)] == list(SCHEDULE_S[1:])
            assert all(signed_by(r, endpoint.secret) for r in failing.requests)
            assert (await endpoint_row(engine, endpoint)).status == "active"  # failing for ~27 h only

            # New events keep failing; once every attempt has failed for five days, the endpoint is disabled.
            clock.at = (await endpoint_row(engine, endpoint)).failing_since + timedelta(days=5)
            await consume(engine, [stage_change("awareness")])
            await run_round()
            disabled = await endpoint_row(engine, endpoint)
            assert disabled.status == "disabled" and "every attempt failed since" in disabled.disabled_reason


async def test_jitter_spreads_a_retry_over_up_to_a_tenth_more(engine):
    clock, config = Clock(), settings()
    async with receiver(always(Reply(503))) as failing:
        endpoint = await add_endpoint(engine, failing.url)
        await consume(engine, [stage_change("awareness")])
        async with worker_rounds(engine, config, clock, draw=lambda: 0.5) as run_round:
            await run_round()
        (row,) = await deliveries(engine, endpoint)
        assert (row.next_attempt_at - row.last_attempt_at).total_seconds() == pytest.approx(5 * 1.05)


async def test_a_blackholed_endpoint_with_a_backlog_never_delays_a_fast_one(engine):
    config = settings(webhooks_timeout_s=15.0, webhooks_idle_poll_s=0.05)
    async with receiver(always(Reply(hang=True))) as blackhole, receiver(always(Reply(200))) as fast:
        hole = await add_endpoint(engine, blackhole.url)
        quick = await add_endpoint(engine, fast.url)

        async def latencies(n: int) -> list[float]:
            """Seconds from queueing to the fast receiver having it, for n events sent one after another."""
            out = []
            for _ in range(n):
                seen = len(fast.requests)
                queued = time.monotonic()
                await consume(engine, [stage_change("purchase")])
                await fast.until(seen + 1)
                out.append(fast.requests[-1].at - queued)
            return out

        async with engine.begin() as conn:  # the blackhole's backlog: 2,000 deliveries due now
            await db.add_deliveries(conn, [{"webhook_id": f"msg_backlog_{n}", "endpoint_id": hole.id,
                                            "event_id": f"backlog-{n}", "event_type": STAGE_CHANGED_TYPE,
                                            "event_time": EVENT_TIME, "payload": b"{}"} for n in range(2000)])
        worker = asyncio.create_task(webhook_worker(config)(SimpleNamespace(engine=engine)))
        try:
            await blackhole.until(1)  # the blackhole is being waited on
            with_blackhole = await latencies(20)
            assert len(blackhole.requests) == 1  # all 20 arrived while its first attempt still hangs
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        async with engine.begin() as conn:
            await db.set_status(conn, hole.id, "paused")
        worker = asyncio.create_task(webhook_worker(config)(SimpleNamespace(engine=engine)))
        try:
            without = await latencies(20)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        print(f"fast endpoint, median s from queueing to receipt: {statistics.median(with_blackhole):.3f} with a "
              f"blackholed endpoint (2,000 backlog), {statistics.median(without):.3f} without")
        assert all(verify(r, quick.secret) for r in fast.requests)
        assert len({r.headers["webhook-id"] for r in fast.requests}) == 40


async def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new_one(engine):
    clock, config = Clock(), settings()
    async with receiver(always(Reply(200))) as target:
        endpoint = await add_endpoint(engine, target.url)
        new = new_secret(b"n" * SECRET_BYTES)
        async with engine.begin() as conn:
            await db.rotate_secret(conn, endpoint.id, secret=new, previous_until=clock() + timedelta(minutes=2))
        await consume(engine, [stage_change("purchase")])
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()
            clock.advance(180)  # the overlap is over
            await consume(engine, [stage_change("loyalty")])
            await run_round()
        during, after = target.requests
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        verify(during, new, endpoint.secret)  # each secret alone verifies it
        assert len(after.headers["webhook-signature"].split(" ")) == 1
        verify(after, new)
        with pytest.raises(Exception, match="No matching signature"):
            verify(after, endpoint.secret)


async def test_a_worker_dying_mid_delivery_redelivers_with_the_same_id_after_the_lease(engine):
    clock, config = Clock(), settings(webhooks_lease_s=60)
    async with receiver(first_then(Reply(hang=True), 1, Reply(200))) as target:
        endpoint = await add_endpoint(engine, target.url)
        await consume(engine, [stage_change("purchase")])
        async with worker_rounds(engine, config, clock) as run_round:
            dying = asyncio.create_task(run_round())
            await target.until(1)
            dying.cancel()  # as if killed mid-delivery: nothing recorded
            await asyncio.gather(dying, return_exceptions=True)
            async with engine.begin() as conn:  # a killed process lets go of nothing: lease it again
                await conn.execute(webhook_endpoints.update().values(lease_until=clock() + timedelta(seconds=60)))
            (row,) = await deliveries(engine, endpoint)
            assert (row.status, row.attempts) == ("pending", 1)
            assert await run_round() == 0  # leased: nobody takes it
            clock.advance(61)
            assert await run_round() == 1
        (row,) = await deliveries(engine, endpoint)
        assert (row.status, row.attempts) == ("delivered", 2)
        first, second = target.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body


async def test_replay_of_one_delivery_and_of_everything_since_a_time(engine):
    clock, config = Clock(), settings()
    async with receiver(always(Reply(200))) as target:
        endpoint = await add_endpoint(engine, target.url)
        await consume(engine, [stage_change("purchase"), stage_change("loyalty")])
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()
            first, second = await deliveries(engine, endpoint)
            async with engine.begin() as conn:
                await db.replay_delivery(conn, endpoint.id, first.id, now=clock())
            await run_round()
            async with engine.begin() as conn:
                assert await db.replay_since(conn, endpoint.id, since=first.created_at, now=clock(),
                                             only_failed=False) == 2
            await run_round()
        assert target.ids() == [first.webhook_id, second.webhook_id, first.webhook_id, first.webhook_id,
                                second.webhook_id]
        assert all(verify(r, endpoint.secret) for r in target.requests)


# ---- the address guard (production mode) ----------------------------------------------------------------


async def post_once(url: str, *, allow_private: bool, resolve=system_resolve, verify=True):
    """One POST of `{}` through the worker's client (its guard, timeouts and caps)."""
    client = WebhookClient(allow_private=allow_private, connect_timeout_s=2, timeout_s=3, max_response_bytes=1024,
                           resolve=resolve, verify=verify)
    try:
        return await client.post(url, headers={}, body=b"{}")
    finally:
        await client.aclose()


def resolving(table: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        return table[host]

    return resolve


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "https://10.0.0.1/hook",
                                 "https://169.254.169.254/latest/meta-data", "http://[::1]:{port}/hook",
                                 "https://rebind.test:{port}/hook", "https://mixed.test/hook", "http://localhost:{port}/"])
async def test_production_refuses_private_loopback_link_local_and_metadata_targets_at_connect_time(url):
    async with receiver(always(Reply(200))) as target:
        port = target.url.split(":")[2].split("/")[0]
        names = {"rebind.test": ["127.0.0.1"], "mixed.test": ["93.184.215.14", "10.1.2.3"], "localhost": ["127.0.0.1"]}
        answer = await post_once(url.format(port=port), allow_private=False, resolve=resolving(names))
        assert answer.status is None and answer.error is not None and answer.error.startswith("refused: the target is")
        assert target.requests == []


async def test_production_refuses_localhost_through_the_system_resolver():
    transport = GuardedTransport(allow_private=False)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(AddressRefused):
            await client.post("http://localhost:9/hook")


async def test_the_checked_address_is_the_one_connected_to_with_the_host_header_kept():
    async with receiver(always(Reply(200))) as target:
        port = target.url.split(":")[2].split("/")[0]
        calls: list[str] = []
        answer = await post_once(f"http://hooks.test:{port}/in", allow_private=True,
                                 resolve=resolving({"hooks.test": ["127.0.0.1"]}, calls))
        assert answer.status == 200 and calls == ["hooks.test"]  # resolved once: checked and used
        assert target.requests[0].headers["host"] == f"hooks.test:{port}"


async def test_https_connects_to_the_checked_address_with_the_name_for_sni_and_the_certificate_check():
    server_tls, trusting = self_signed("hooks.test")
    async with receiver(always(Reply(200)), tls=server_tls) as target:
        port = target.url.split(":")[2].split("/")[0]

        async def post(name: str, address: str):
            return await post_once(f"https://{name}:{port}/in", allow_private=True,
                                   resolve=resolving({name: [address]}), verify=trusting)

        answer = await post("hooks.test", "127.0.0.1")
        assert answer.status == 200, answer.error
        assert target.requests[0].headers["host"] == f"hooks.test:{port}"
        # Another name resolving to the same address: the certificate is checked against the name asked for.
        other = await post("other.test", "127.0.0.1")
        assert other.status is None and other.error == "ConnectError"
        assert len(target.requests) == 1


async def test_the_worker_in_production_mode_never_reaches_a_loopback_receiver(engine):
    clock, config = Clock(), settings(webhooks_allow_insecure_targets=False)
    async with receiver(always(Reply(200))) as target:
        endpoint = await add_endpoint(engine, target.url)  # as if registered before the rules were tightened
        await consume(engine, [stage_change("purchase")])
        async with worker_rounds(engine, config, clock) as run_round:
            await run_round()
        (row,) = await deliveries(engine, endpoint)
        assert row.status == "pending" and row.last_error == "refused: the target is a loopback address"
        assert target.requests == []


async def test_redirects_are_not_followed():
    async with receiver(always(Reply(200))) as inner, \
            receiver(always(Reply(307, headers=(("Location", "http://127.0.0.1:1/elsewhere"),)))) as redirecting:
        answer = await post_once(redirecting.url, allow_private=True)
        assert answer.status == 307 and inner.requests == []


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


def loyalty_event(event_type: str, customer: str, data: dict) -> CloudEvent:
    return CloudEvent(id=str(uuid.uuid4()), source="/loyalty", type=event_type, time=EVENT_TIME, subject=customer,
                      data={"customer_id": customer, **data})


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
