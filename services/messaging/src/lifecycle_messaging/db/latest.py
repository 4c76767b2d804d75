"""Each customer's latest transition seen, and suppressing messages about older ones (`domain.suppression`).
Functions take the caller's connection and never commit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import latest_transitions, messages
from lifecycle_messaging.domain.audience import Profile
from lifecycle_messaging.domain.suppression import SUPPRESSED, Position

PENDING = ("queued", "awaiting_contact")


async def latest_of(conn: AsyncConnection, customer_ids: list[str]) -> dict[str, Position]:
    if not customer_ids:
        return {}
    rows = await conn.execute(select(latest_transitions).where(latest_transitions.c.customer_id.in_(customer_ids)))
    return {row.customer_id: Position(row.event_time, row.processed_at, row.transition_id) for row in rows}


async def profiles_of(conn: AsyncConnection, customer_ids: list[str]) -> dict[str, Profile]:
    """The customers' profiles as their latest transitions told them (those that have one)."""
    if not customer_ids:
        return {}
    table = latest_transitions.c
    rows = await conn.execute(select(table.customer_id, table.to_stage, table.traits, table.orders, table.revenue)
                              .where(table.customer_id.in_(customer_ids)))
    return {row.customer_id: Profile(stage=row.to_stage, traits=row.traits or {}, orders=row.orders,
                                     revenue=row.revenue) for row in rows}


_PROFILE = ("to_stage", "traits", "orders", "revenue")


async def record(conn: AsyncConnection, latest: dict[str, Position],
                 profiles: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Customer -> latest transition, with the profile it told (`profiles`, by transition id: to_stage,
    traits, orders, revenue); a stored one stays if it is later (`domain.suppression.takes_over`, in SQL: a
    concurrent transaction's later transition is never overwritten)."""
    if not latest:
        return
    stmt = insert(latest_transitions)
    table = latest_transitions.c
    told = profiles or {}
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={"transition_id": stmt.excluded.transition_id, "event_time": stmt.excluded.event_time,
                  "processed_at": stmt.excluded.processed_at,
                  **{column: getattr(stmt.excluded, column) for column in _PROFILE}},
            where=tuple_(table.event_time, table.processed_at)
            <= tuple_(stmt.excluded.event_time, stmt.excluded.processed_at)),
        [{"customer_id": customer, "transition_id": p.transition_id, "event_time": p.event_time,
          "processed_at": p.processed_at, **{column: told.get(p.transition_id, {}).get(column) for column in _PROFILE}}
         for customer, p in sorted(latest.items())])


# A merge (`db.merges.hand_over`): the survivor's latest transition is the latest of its own and the absorbed keys'
# (a tie keeps the survivor's).
HAND_OVER_SQL = (
    "INSERT INTO latest_transitions (customer_id, transition_id, event_time, processed_at, to_stage, traits, orders, "
    "revenue) SELECT :survivor, l.transition_id, l.event_time, l.processed_at, l.to_stage, l.traits, l.orders, "
    "l.revenue FROM latest_transitions l "
    "WHERE l.customer_id = ANY(:absorbed) ORDER BY l.event_time DESC, l.processed_at DESC LIMIT 1 "
    "ON CONFLICT (customer_id) DO UPDATE SET transition_id = excluded.transition_id, "
    "event_time = excluded.event_time, processed_at = excluded.processed_at, to_stage = excluded.to_stage, "
    "traits = excluded.traits, orders = excluded.orders, revenue = excluded.revenue "
    "WHERE (latest_transitions.event_time, latest_transitions.processed_at) "
    "< (excluded.event_time, excluded.processed_at)")


async def pending_of(conn: AsyncConnection, customer_ids: list[str]) -> tuple[list[Any], dict[str, Position]]:
    """The customers' messages not yet sent (queued or waiting for an address) that can be judged, and the latest
    transition of each of their customers (`latest_of`, read in the same statement)."""
    if not customer_ids:
        return [], {}
    table = latest_transitions.c
    rows = (await conn.execute(
        select(messages.c.id, messages.c.customer_id, messages.c.template, messages.c.cause_event_id,
               messages.c.event_time, messages.c.processed_at, messages.c.due_at, messages.c.held_until,
               messages.c.trigger, messages.c.not_before, table.transition_id.label("latest_id"),
               table.event_time.label("latest_event_time"), table.processed_at.label("latest_processed_at"))
        .select_from(messages.outerjoin(latest_transitions, table.customer_id == messages.c.customer_id))
        .where(messages.c.customer_id.in_(customer_ids), messages.c.status.in_(PENDING),
               messages.c.event_time.is_not(None)))).all()
    return list(rows), {row.customer_id: Position(row.latest_event_time, row.latest_processed_at, row.latest_id)
                        for row in rows if row.latest_id is not None}


async def suppress(conn: AsyncConnection, reasons: dict[str, str]) -> list[str]:
    """Mark these messages suppressed, each with its reason, if they are still not sent (another
    transaction may have got there first); the ids marked now."""
    marked: list[str] = []
    for reason in sorted(set(reasons.values())):
        ids = sorted(message_id for message_id, why in reasons.items() if why == reason)
        marked += (await conn.execute(
            update(messages).where(messages.c.id.in_(ids), messages.c.status.in_(PENDING))
            .values(status=SUPPRESSED, suppressed_reason=reason, status_changed_at=func.now())
            .returning(messages.c.id))).scalars().all()
    return marked
