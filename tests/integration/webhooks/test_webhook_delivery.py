"""Webhook fan-out and delivery against real PostgreSQL and real local HTTP receivers (tests/support/
webhook_receivers.py): every signature verified by the `standardwebhooks` library, unmodified; the retry
schedule on a clock the test moves; a blackholed endpoint's backlog never holding up a fast one; leases
giving at-least-once with stable webhook-ids; replay."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from lifecycle_messaging.db import webhooks as db
from lifecycle_messaging.db.models import webhook_endpoints
from lifecycle_messaging.domain.webhooks import SCHEDULE_S, SECRET_BYTES, new_secret
from lifecycle_messaging.handlers.webhooks import handle_webhooks
from lifecycle_messaging.workers.webhooks import webhook_worker
from lifecycle_shared.events import (
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    StageChangedData,
)
from lifecycle_shared.kafka.registry import Typed

from tests.support.webhook_delivery import (
    EVENT_TIME,
    Clock,
    add_endpoint,
    consume,
    deliveries,
    endpoint_row,
    merged,
    settings,
    signed_by,
    stage_change,
    verify,
    worker_rounds,
)
from tests.support.webhook_receivers import Reply, always, first_then, receiver


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

