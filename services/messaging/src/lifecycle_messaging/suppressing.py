"""Suppressing messages that no longer follow where their customer stands (`domain.suppression`):
what they are judged against - the service's clock (injected: `create_app(settings, clock=...)`) and
the freshness window (`freshness_s`) - and the judging of messages not yet sent, shared by the
stage_changed handler (when a newer transition arrives) and the delivery worker (before sending)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import latest
from lifecycle_messaging.domain.suppression import Position, about_a_transition, delay_of, judged_at, suppression
from lifecycle_messaging.metrics import suppressed


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Freshness:
    """The time now, and how old a transition may be and still be news."""

    clock: Callable[[], datetime]
    window: timedelta


async def suppress_overtaken(conn: AsyncConnection, pending: Sequence[Any], freshness: Freshness, *,
                             seen: Mapping[str, Position] | None = None) -> set[str]:
    """Judge messages not yet sent (rows with id, customer_id, template, cause_event_id, event_time,
    processed_at, trigger, not_before) against their customers' latest transitions seen and the clock: those
    that may not go out are marked suppressed with their reason, counted and logged. Their ids. A message a
    touchpoint or loyalty event started is judged by its age only; a delayed one is aged from its due time."""
    if seen is None:  # (`seen`: their customers' latest transitions, when the caller read them)
        seen = await latest.latest_of(conn, sorted({row.customer_id for row in pending}))
    now, reasons = freshness.clock(), {}
    for row in pending:
        if row.event_time is None:  # queued before transitions were placed: not judged
            continue
        # The wait quiet hours and caps imposed does not age a message (`domain.suppression.judged_at`).
        at = judged_at(now, due_at=getattr(row, "due_at", None), held_until=getattr(row, "held_until", None))
        at -= delay_of(row.event_time, getattr(row, "not_before", None))
        transition = about_a_transition(getattr(row, "trigger", None))
        reason = suppression(Position(row.event_time, row.processed_at or row.event_time, row.cause_event_id),
                             latest=seen.get(row.customer_id) if transition else None, now=at,
                             freshness=freshness.window)
        if reason is not None:
            reasons[row.id] = reason
    marked = set(await latest.suppress(conn, reasons))
    for row in pending:
        if row.id in marked:
            suppressed(row.id, row.template, reasons[row.id])
    return marked
