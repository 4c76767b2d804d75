"""The webhook delivery worker: per-endpoint queues, worked concurrently, each by one worker at a time.

Each round leases up to `webhooks_endpoints_in_flight` endpoints that have a due delivery (least
recently served first) and works each one's queue in a task of its own: claim the next due delivery
(its attempt counted, leased), post it, record the outcome, up to `webhooks_per_turn` deliveries or the
first failure, then let go. A blackholed endpoint holds one slot for at most its timeout per turn, and
never the other endpoints' tasks. A worker killed mid-delivery leaves the delivery leased: it comes back
after the lease, to any worker, with the same webhook-id (at least once).

Outcomes: 2xx delivered; 410 disables the endpoint at once; anything else is retried on the schedule
(`domain.webhooks.SCHEDULE_S`, jittered; Retry-After on 429/503 honoured) and given up after the last
attempt; an endpoint whose every attempt has failed for 5 days is disabled. A disabled endpoint is logged
(a warning naming it and why), counted, shown with its reason by the admin API, announced to the endpoints
subscribed to `webhook.endpoint_disabled` and emailed to the operator (`operator_email`, when set).

The `message.*` events are read from messaging's own logs, one cursor per type (`announce_messages`): sent,
suppressed and failed from the message log, unsubscribed from the consent log.

Never logged: the secret, the payload, the URL (it may carry a token). Only ids, codes, kinds of error.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_messaging.db import repository as messages
from lifecycle_messaging.db import webhooks as db
from lifecycle_messaging.domain.webhooks import (
    ENDPOINT_DISABLED,
    LOGGED_EVENTS,
    MAX_ATTEMPTS,
    MESSAGE_UNSUBSCRIBED,
    disables_endpoint,
    endpoint_disabled_data,
    endpoint_disabled_event_id,
    judge,
    message_event_data,
    message_event_id,
    next_attempt,
    operator_notice,
    payload,
    secrets_in_force,
    signature_header,
    subscribers,
    unsubscribed_data,
    unsubscribed_event_id,
    webhook_id,
)
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.workers.webhook_http import Answer, Resolver, WebhookClient, system_resolve

log = logging.getLogger(__name__)

ATTEMPTS = Counter("lifecycle_webhook_attempts_total", "Webhook delivery attempts, by outcome",
                   ["outcome"])  # delivered | retry | failed | gone
DISABLED = Counter("lifecycle_webhook_endpoints_disabled_total", "Webhook endpoints disabled, by reason", ["reason"])
LATENCY = Histogram("lifecycle_webhook_attempt_seconds", "Time from request to response of a webhook attempt",
                    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15))

Clock = Callable[[], datetime]
Draw = Callable[[], float]


def utc_now() -> datetime:
    return datetime.now(UTC)


def client_for(settings: MessagingSettings, resolve: Resolver = system_resolve) -> WebhookClient:
    return WebhookClient(allow_private=settings.webhooks_insecure_targets_allowed,
                         connect_timeout_s=settings.webhooks_connect_timeout_s, timeout_s=settings.webhooks_timeout_s,
                         max_response_bytes=settings.webhooks_max_response_bytes, resolve=resolve)


def lease_s(settings: MessagingSettings, batch: int = 1) -> float:
    """Long enough for `batch` attempts and their recording: renewed at every claim."""
    return max(settings.webhooks_lease_s, batch * settings.webhooks_timeout_s + 15)


def headers_for(endpoint: Any, delivery: Any, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    secrets = secrets_in_force(endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_until, now)
    return {"content-type": "application/json", "user-agent": "Lifecycle-Webhooks/1",
            "webhook-id": delivery.webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, delivery.webhook_id, timestamp, delivery.payload)}


async def serve_endpoint(engine: AsyncEngine, client: WebhookClient, endpoint_id: str, settings: MessagingSettings,
                         clock: Clock, draw: Draw, *, held_until: datetime) -> int:
    """Work one leased endpoint's queue for a turn; returns how many deliveries it attempted. Deliveries are
    claimed a few at a time (`webhooks_claim_batch`, leased for as long as they could all take) and each
    outcome is recorded as soon as it is known; after a failure the rest of the claim is handed back."""
    attempted = 0
    try:
        while attempted < settings.webhooks_per_turn:
            batch = max(1, min(settings.webhooks_claim_batch, settings.webhooks_per_turn - attempted))
            async with engine.begin() as conn:
                endpoint, claimed = await db.claim_deliveries(conn, endpoint_id, now=clock(), limit=batch,
                                                              lease_s=lease_s(settings, batch))
            if endpoint is not None:
                held_until = endpoint.lease_until
            if not claimed:
                break
            for n, delivery in enumerate(claimed):
                attempted += 1
                now = clock()
                if delivery.attempts > MAX_ATTEMPTS:  # earlier attempts died mid-delivery
                    answer = Answer(None, None, 0, f"gave up after {delivery.attempts - 1} interrupted attempts")
                else:
                    answer = await client.post(endpoint.url, headers=headers_for(endpoint, delivery, now),
                                               body=delivery.payload)
                if not await record(engine, endpoint, delivery, answer, clock(), draw,
                                    operator_email=settings.operator_email):
                    async with engine.begin() as conn:  # a failing endpoint waits its next turn: others go first
                        await db.unclaim(conn, [d.id for d in claimed[n + 1:]], now=clock())
                    return attempted
    finally:
        async with engine.begin() as conn:
            await db.release_endpoint(conn, endpoint_id, held_until=held_until, now=clock())
    return attempted


async def record(engine: AsyncEngine, endpoint: Any, delivery: Any, answer: Answer, now: datetime,
                 draw: Draw, *, operator_email: str | None = None) -> bool:
    """Store the attempt's outcome; True when it was delivered. A disabled endpoint is told to the operator
    (`operator_email`) and to the endpoints subscribed to `webhook.endpoint_disabled`, in the same transaction."""
    if answer.status is not None:
        LATENCY.observe(answer.latency_ms / 1000)
    verdict = judge(answer.status, answer.retry_after, now) if delivery.attempts <= MAX_ATTEMPTS else None
    error = answer.error or (f"HTTP {answer.status}" if answer.status is not None else None)
    async with engine.begin() as conn:
        if verdict is not None and verdict.delivered:
            ATTEMPTS.labels("delivered").inc()
            await db.record_attempt(conn, delivery.id, status="delivered", next_attempt_at=None,
                                    status_code=answer.status, latency_ms=answer.latency_ms, error=None, now=now)
            if endpoint.failing_since is not None:
                await db.endpoint_succeeded(conn, endpoint.id)
            return True
        if verdict is not None and verdict.gone:
            ATTEMPTS.labels("gone").inc()
            await db.record_attempt(conn, delivery.id, status="failed", next_attempt_at=None, status_code=410,
                                    latency_ms=answer.latency_ms, error="HTTP 410: the endpoint is gone", now=now)
            await disable(conn, endpoint, "the endpoint answered 410 Gone", label="gone", now=now,
                          failing_since=endpoint.failing_since, operator_email=operator_email)
            return False
        retry_at = None if verdict is None else next_attempt(delivery.attempts, now, draw(), verdict.retry_after_s)
        ATTEMPTS.labels("retry" if retry_at else "failed").inc()
        await db.record_attempt(conn, delivery.id, status="pending" if retry_at else "failed",
                                next_attempt_at=retry_at, status_code=answer.status, latency_ms=answer.latency_ms,
                                error=error, now=now)
        log.info("webhook attempt failed", extra={"endpoint_id": endpoint.id, "webhook_id": delivery.webhook_id,
                                                  "attempt": delivery.attempts, "status_code": answer.status,
                                                  "reason": error, "give_up": retry_at is None})
        failing_since = await db.endpoint_failed(conn, endpoint.id, now=now)
        if disables_endpoint(failing_since, now):
            await disable(conn, endpoint, f"every attempt failed since {failing_since:%Y-%m-%dT%H:%MZ}",
                          label="failing", now=now, failing_since=failing_since, operator_email=operator_email)
    return False


async def disable(conn: Any, endpoint: Any, reason: str, *, label: str, now: datetime,
                  failing_since: datetime | None, operator_email: str | None) -> None:
    """Disable the endpoint; queue `webhook.endpoint_disabled` to the other endpoints that want it and, when
    an operator address is set, an email through messaging's own queue (transactional: about no customer's
    transition, it is never judged stale)."""
    await db.set_status(conn, endpoint.id, "disabled", reason=reason)
    DISABLED.labels(label).inc()
    log.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.id, "reason": reason})
    data = endpoint_disabled_data(endpoint.id, endpoint.url, reason=reason, why=label, disabled_at=now,
                                  failing_since=failing_since)
    event_id = endpoint_disabled_event_id(endpoint.id, now)
    body = payload(ENDPOINT_DISABLED, now, data)
    others = subscribers(await db.subscriptions(conn, [ENDPOINT_DISABLED]), ENDPOINT_DISABLED, data)
    await db.add_deliveries(conn, [{"webhook_id": webhook_id(other, event_id), "endpoint_id": other,
                                    "event_id": event_id, "event_type": ENDPOINT_DISABLED, "event_time": now,
                                    "payload": body} for other in others if other != endpoint.id])
    if operator_email:
        await messages.add_messages(conn, [operator_notice(data, description=endpoint.description, to=operator_email)])


async def deliver_round(engine: AsyncEngine, client: WebhookClient, settings: MessagingSettings, *,
                        clock: Clock, draw: Draw = random.random) -> int:
    """One round, to completion: lease the endpoints with due deliveries and work them concurrently
    (tests drive this with their own clock); returns how many deliveries were attempted."""
    async with engine.begin() as conn:
        leased = await db.claim_endpoints(conn, now=clock(), limit=settings.webhooks_endpoints_in_flight,
                                          lease_s=lease_s(settings), exclude=[])
    done = await asyncio.gather(*(serve_endpoint(engine, client, row.id, settings, clock, draw,
                                                 held_until=row.lease_until) for row in leased))
    return sum(done)


def webhook_worker(settings: MessagingSettings, *, clock: Clock = utc_now, draw: Draw = random.random,
                   resolve: Resolver = system_resolve):
    """The running loop: a slot freed by one endpoint is refilled at once, without waiting for the others."""

    async def deliver_webhooks(runtime: Any) -> None:
        engine: AsyncEngine = runtime.engine
        client = client_for(settings, resolve)
        tasks: dict[str, asyncio.Task[int]] = {}
        try:
            while True:
                tasks = {key: task for key, task in tasks.items() if not task.done()}
                room = settings.webhooks_endpoints_in_flight - len(tasks)
                leased: list[Any] = []
                if room > 0:
                    try:
                        async with engine.begin() as conn:
                            leased = await db.claim_endpoints(conn, now=clock(), limit=room, lease_s=lease_s(settings),
                                                              exclude=list(tasks))
                    except Exception:  # noqa: BLE001 - the database away: try again next round
                        log.exception("cannot lease webhook endpoints")
                for row in leased:
                    tasks[row.id] = asyncio.create_task(_served(engine, client, row, settings, clock, draw))
                if not leased:
                    if tasks:
                        await asyncio.wait(tasks.values(), timeout=settings.webhooks_idle_poll_s,
                                           return_when=asyncio.FIRST_COMPLETED)
                    else:
                        await asyncio.sleep(settings.webhooks_idle_poll_s)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            await client.aclose()

    return deliver_webhooks


async def _served(engine: AsyncEngine, client: WebhookClient, leased: Any, settings: MessagingSettings,
                  clock: Clock, draw: Draw) -> int:
    try:
        return await serve_endpoint(engine, client, leased.id, settings, clock, draw, held_until=leased.lease_until)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - one endpoint's trouble (the database away) never stops the worker
        log.exception("webhook endpoint turn failed", extra={"endpoint_id": leased.id})
        return 0


# ---- message events: messaging's own, read from the message log --------------------------------------------

# How far back each look at the log reaches behind where the last one stopped: a message marked sent (failed,
# suppressed) by a transaction that began before it and committed after it is still announced (announcing
# twice is harmless: the webhook-id is derived from the event type and the message).
SENT_LOOK_BACK = timedelta(seconds=30)


async def announce_messages(engine: AsyncEngine, event_type: str, *, now: datetime, look_back: bool = True,
                            limit: int = 1000) -> tuple[int, bool]:
    """Queue deliveries of one message event type (`message.sent`, `.suppressed`, `.failed`: the messages that
    came to it; `message.unsubscribed`: the addresses whose marketing consent became unsubscribed) since its
    cursor; (deliveries queued, whether the read was full: more are waiting). Until someone subscribes the
    cursor just follows the clock."""
    async with engine.begin() as conn:
        position = await db.cursor(conn, event_type, start=now)
        if not await db.subscribed(conn, event_type):
            await db.move_cursor(conn, event_type, max(position, now))
            return 0, False
        since = position - SENT_LOOK_BACK if look_back else position
        if event_type == MESSAGE_UNSUBSCRIBED:
            found = await db.unsubscribes_since(conn, since, limit=limit)
            events = [(unsubscribed_event_id(change.seq), change.at, unsubscribed_data(change._asdict()))
                      for change in found]
        else:
            found = await db.messages_since(conn, event_type, since, limit=limit)
            events = [(message_event_id(event_type, message.id), message.at,
                       message_event_data(event_type, message._asdict())) for message in found]
        subscriptions = await db.subscriptions(conn, [event_type])
        rows = []
        for event_id, at, data in events:
            for endpoint_id in subscribers(subscriptions, event_type, data):
                rows.append({"webhook_id": webhook_id(endpoint_id, event_id), "endpoint_id": endpoint_id,
                             "event_id": event_id, "event_type": event_type, "event_time": at,
                             "payload": payload(event_type, at, data)})
        await db.add_deliveries(conn, rows)
        if found and found[-1].at > position:
            await db.move_cursor(conn, event_type, found[-1].at)
    return len(rows), len(found) == limit


async def announce_message_events(engine: AsyncEngine, *, now: datetime) -> int:
    """Every message event type once, each looking back (tests, operators); the deliveries queued."""
    return sum([(await announce_messages(engine, event_type, now=now))[0] for event_type in LOGGED_EVENTS])


def message_events(settings: MessagingSettings, *, clock: Clock = utc_now):
    """The loop announcing message events; a type whose read was full is followed at once, without looking back."""

    async def announce_from_the_message_log(runtime: Any) -> None:
        full: set[str] = set()
        while True:
            for event_type in LOGGED_EVENTS:
                try:
                    _, more = await announce_messages(runtime.engine, event_type, now=clock(),
                                                      look_back=event_type not in full)
                except Exception:  # noqa: BLE001 - the database away: the next look finds what this one missed
                    log.exception("cannot announce message events", extra={"event_type": event_type})
                    more = False
                if more:
                    full.add(event_type)
                else:
                    full.discard(event_type)
            if not full:
                await asyncio.sleep(settings.webhooks_idle_poll_s * 2)

    return announce_from_the_message_log
