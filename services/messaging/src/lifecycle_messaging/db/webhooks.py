"""The SQL of webhooks: endpoints, their deliveries, the per-endpoint queues and leases.

Functions take the caller's connection and never commit. Times the worker acts on come from its clock
(`now`), so a test can move it; rows the consumer writes are due at the database's `now()`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import consent_changes, messages, webhook_cursors
from lifecycle_messaging.db.models import webhook_deliveries as deliveries
from lifecycle_messaging.db.models import webhook_endpoints as endpoints
from lifecycle_messaging.domain.webhooks import (
    MESSAGE_FAILED,
    MESSAGE_SENT,
    MESSAGE_SUPPRESSED,
    OPERATOR_NOTICE,
    Subscription,
)

# ---- endpoints (admin API) ----------------------------------------------------------------------------


async def add_endpoint(conn: AsyncConnection, row: dict[str, Any]) -> Any:
    return (await conn.execute(insert(endpoints).values(**row).returning(endpoints))).one()


async def all_endpoints(conn: AsyncConnection) -> list[Any]:
    return list((await conn.execute(select(endpoints).order_by(endpoints.c.created_at, endpoints.c.id))).all())


async def endpoint(conn: AsyncConnection, endpoint_id: str) -> Any | None:
    return (await conn.execute(select(endpoints).where(endpoints.c.id == endpoint_id))).one_or_none()


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str) -> bool:
    """The endpoint and its delivery log (cascade)."""
    return bool((await conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id))).rowcount)


async def set_status(conn: AsyncConnection, endpoint_id: str, status: str, *, reason: str | None = None,
                     restart_failing: bool = False) -> Any | None:
    values: dict[str, Any] = {"status": status, "disabled_reason": reason, "updated_at": func.now()}
    if restart_failing:  # resumed by the operator: a fresh run of failures before it can be disabled again
        values["failing_since"] = None
    return (await conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(**values)
                               .returning(endpoints))).one_or_none()


async def rotate_secret(conn: AsyncConnection, endpoint_id: str, *, secret: str,
                        previous_until: datetime) -> Any | None:
    """The new secret signs from now on; the one it replaces also signs until `previous_until`."""
    return (await conn.execute(
        update(endpoints).where(endpoints.c.id == endpoint_id)
        .values(previous_secret=endpoints.c.secret, previous_secret_until=previous_until, secret=secret,
                updated_at=func.now())
        .returning(endpoints))).one_or_none()


# ---- fan-out (the consumer) -----------------------------------------------------------------------------


async def subscriptions(conn: AsyncConnection, event_types: list[str]) -> list[Subscription]:
    """Endpoints that take any of these event types and still queue deliveries (active or paused)."""
    rows = await conn.execute(select(endpoints.c.id, endpoints.c.event_types, endpoints.c.stages)
                              .where(endpoints.c.status.in_(("active", "paused")),
                                     endpoints.c.event_types.overlap(event_types)))
    return [Subscription(endpoint_id=row.id, event_types=tuple(row.event_types),
                         stages=tuple(row.stages) if row.stages is not None else None) for row in rows]


async def add_deliveries(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """One statement; a (endpoint, event) already there (a redelivered event) is skipped."""
    if rows:
        await conn.execute(insert(deliveries).values(next_attempt_at=func.now(), created_at=func.now())
                           .on_conflict_do_nothing(index_elements=["webhook_id"]), rows)


async def subscribed(conn: AsyncConnection, event_type: str) -> bool:
    return bool((await conn.execute(select(exists().where(endpoints.c.status.in_(("active", "paused")),
                                                          endpoints.c.event_types.any_() == event_type)))).scalar())


async def cursor(conn: AsyncConnection, name: str, *, start: datetime) -> datetime:
    """The cursor's position, locked for this transaction (one announcer at a time); made at `start`."""
    await conn.execute(insert(webhook_cursors).values(name=name, position=start)
                       .on_conflict_do_nothing(index_elements=["name"]))
    return (await conn.execute(select(webhook_cursors.c.position).where(webhook_cursors.c.name == name)
                               .with_for_update())).scalar_one()


async def move_cursor(conn: AsyncConnection, name: str, position: datetime) -> None:
    await conn.execute(update(webhook_cursors).where(webhook_cursors.c.name == name).values(position=position))


# Each message event's rows in the log, and the time column they are announced in the order of.
_MESSAGE_EVENT_ROWS = {MESSAGE_SENT: (messages.c.sent_at, messages.c.sent_at.is_not(None)),
                       MESSAGE_SUPPRESSED: (messages.c.status_changed_at, messages.c.status == "suppressed"),
                       MESSAGE_FAILED: (messages.c.status_changed_at, messages.c.status == "failed")}


async def messages_since(conn: AsyncConnection, event_type: str, since: datetime, *, limit: int) -> list[Any]:
    """Messages sent (suppressed, failed: by `event_type`) at or after `since`, oldest first, each with
    `at`: when it was."""
    at, which = _MESSAGE_EVENT_ROWS[event_type]
    return list((await conn.execute(
        select(messages.c.id, messages.c.customer_id, messages.c.user_id, messages.c.template, messages.c.stage,
               messages.c.channel, messages.c.cause_event_id, messages.c.sent_at, messages.c.status_changed_at,
               messages.c.suppressed_reason, messages.c.attempts, at.label("at"))
        .where(which, at >= since, messages.c.template != OPERATOR_NOTICE)  # about no customer: not announced
        .order_by(at, messages.c.id).limit(limit))).all())


async def unsubscribes_since(conn: AsyncConnection, since: datetime, *, limit: int) -> list[Any]:
    """Changes of the consent log that made an address's marketing consent `unsubscribed`, at or after `since`,
    oldest first, each with `at` (the log records only changes, so each is a becoming). Not the address."""
    return list((await conn.execute(
        select(consent_changes.c.seq, consent_changes.c.customer_id, consent_changes.c.channel,
               consent_changes.c.purpose, consent_changes.c.source, consent_changes.c.previous_state,
               consent_changes.c.at)
        .where(consent_changes.c.state == "unsubscribed", consent_changes.c.purpose == "marketing",
               consent_changes.c.at >= since)
        .order_by(consent_changes.c.at, consent_changes.c.seq).limit(limit))).all())


# ---- the worker ---------------------------------------------------------------------------------------------


def _due(now: datetime) -> Any:
    return and_(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now)


async def claim_endpoints(conn: AsyncConnection, *, now: datetime, limit: int, lease_s: float,
                          exclude: list[str]) -> list[Any]:
    """Lease up to `limit` active endpoints with a due delivery, least recently served first: each
    endpoint's queue is worked by one worker at a time, and a busy one cannot starve the others."""
    free = (select(endpoints.c.id)
            .where(endpoints.c.status == "active",
                   or_(endpoints.c.lease_until.is_(None), endpoints.c.lease_until <= now),
                   endpoints.c.id.not_in(exclude),
                   exists().where(deliveries.c.endpoint_id == endpoints.c.id, _due(now)))
            .order_by(endpoints.c.lease_until.asc().nulls_first()).limit(limit)
            .with_for_update(skip_locked=True)).scalar_subquery()
    return list((await conn.execute(
        update(endpoints).where(endpoints.c.id.in_(free))
        .values(lease_until=now + timedelta(seconds=lease_s)).returning(endpoints))).all())


async def claim_deliveries(conn: AsyncConnection, endpoint_id: str, *, now: datetime, limit: int,
                           lease_s: float) -> tuple[Any, list[Any]]:
    """The endpoint's next due deliveries (up to `limit`, oldest due first), each attempt counted and leased
    (moved `lease_s` ahead: a worker that dies mid-delivery leaves them to come back with the same
    webhook-ids), with the endpoint as it is now (status, secrets) and its lease renewed as long; nothing
    when nothing is due or the endpoint is no longer active."""
    current = (await conn.execute(
        update(endpoints).where(endpoints.c.id == endpoint_id, endpoints.c.status == "active")
        .values(lease_until=now + timedelta(seconds=lease_s)).returning(endpoints))).one_or_none()
    if current is None:
        return None, []
    due = (select(deliveries.c.id).where(deliveries.c.endpoint_id == endpoint_id, _due(now))
           .order_by(deliveries.c.next_attempt_at, deliveries.c.id).limit(limit)
           .with_for_update(skip_locked=True)).scalar_subquery()
    claimed = (await conn.execute(
        update(deliveries).where(deliveries.c.id.in_(due))
        .values(attempts=deliveries.c.attempts + 1, last_attempt_at=now,
                next_attempt_at=now + timedelta(seconds=lease_s))
        .returning(deliveries))).all()
    return current, sorted(claimed, key=lambda row: (row.next_attempt_at, row.id))


async def unclaim(conn: AsyncConnection, delivery_ids: list[int], *, now: datetime) -> None:
    """Claimed deliveries not attempted after all (the endpoint failed first): due again, attempt uncounted."""
    if delivery_ids:
        await conn.execute(update(deliveries).where(deliveries.c.id.in_(delivery_ids), deliveries.c.status == "pending")
                           .values(attempts=deliveries.c.attempts - 1, next_attempt_at=now))


async def release_endpoint(conn: AsyncConnection, endpoint_id: str, *, held_until: datetime, now: datetime) -> None:
    """Let go of the endpoint's queue, if this worker still holds it (its lease still the one it took: one
    that ran out may have been taken by another); `now` stays as when it was last served."""
    await conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id, endpoints.c.lease_until == held_until)
                       .values(lease_until=now))


async def record_attempt(conn: AsyncConnection, delivery_id: int, *, status: str, next_attempt_at: datetime | None,
                         status_code: int | None, latency_ms: int, error: str | None, now: datetime) -> None:
    values: dict[str, Any] = {"status": status, "last_status_code": status_code, "last_latency_ms": latency_ms,
                              "last_error": error[:500] if error else None}
    if status == "delivered":
        values["delivered_at"] = now
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    await conn.execute(update(deliveries).where(deliveries.c.id == delivery_id, deliveries.c.status == "pending")
                       .values(**values))


async def endpoint_succeeded(conn: AsyncConnection, endpoint_id: str) -> None:
    await conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id, endpoints.c.failing_since.is_not(None))
                       .values(failing_since=None))


async def endpoint_failed(conn: AsyncConnection, endpoint_id: str, *, now: datetime) -> datetime | None:
    """Counts a failure in the endpoint's current run of failures; returns when that run started."""
    row = (await conn.execute(
        update(endpoints).where(endpoints.c.id == endpoint_id)
        .values(failing_since=func.coalesce(endpoints.c.failing_since, now))
        .returning(endpoints.c.failing_since))).one_or_none()
    return row.failing_since if row is not None else None


# ---- the delivery log and replays (admin API) ---------------------------------------------------------------


async def delivery_log(conn: AsyncConnection, endpoint_id: str, *, status: str | None, before: int | None,
                       limit: int) -> list[Any]:
    """Newest first; `before`: the id of the last one of the previous page."""
    query = select(*[c for c in deliveries.c if c.name != "payload"]).where(deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    if before is not None:
        query = query.where(deliveries.c.id < before)
    return list((await conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit))).all())


async def replay_delivery(conn: AsyncConnection, endpoint_id: str, delivery_id: int, *, now: datetime) -> Any | None:
    """Send it again (same webhook-id), with a fresh schedule."""
    return (await conn.execute(
        update(deliveries).where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.id == delivery_id)
        .values(status="pending", attempts=0, next_attempt_at=now, delivered_at=None)
        .returning(*[c for c in deliveries.c if c.name != "payload"]))).one_or_none()


async def replay_since(conn: AsyncConnection, endpoint_id: str, *, since: datetime, now: datetime,
                       only_failed: bool) -> int:
    """Every delivery of the endpoint queued since `since` (or only the failed ones) again, fresh schedules."""
    query = update(deliveries).where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.created_at >= since)
    if only_failed:
        query = query.where(deliveries.c.status == "failed")
    return int((await conn.execute(
        query.values(status="pending", attempts=0, next_attempt_at=now, delivered_at=None))).rowcount)


async def deliveries_of(conn: AsyncConnection, endpoint_id: str) -> list[Any]:
    """Every delivery of an endpoint with its payload, oldest first (tests and operators)."""
    return list((await conn.execute(select(deliveries).where(deliveries.c.endpoint_id == endpoint_id)
                                    .order_by(deliveries.c.id))).all())
