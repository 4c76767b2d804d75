"""When each customer last did each track event a campaign's `cancelled_by` names (`last_events`): what cancels a
waiting message (the cart bought). Functions take the caller's connection and never commit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import last_events


async def record(conn: AsyncConnection, seen: Mapping[tuple[str, str], datetime]) -> None:
    """(customer, event type) -> when: kept when later than what is stored (events arrive in any order)."""
    if not seen:
        return
    stmt = insert(last_events)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["customer_id", "event_type"],
                                   set_={"last_at": func.greatest(last_events.c.last_at, stmt.excluded.last_at)}),
        [{"customer_id": customer, "event_type": event_type, "last_at": at}
         for (customer, event_type), at in sorted(seen.items())])


async def last_of(conn: AsyncConnection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
    """When each (customer, event type) was last seen, for those ever seen."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    table = last_events.c
    rows = await conn.execute(select(table.customer_id, table.event_type, table.last_at)
                              .where(tuple_(table.customer_id, table.event_type).in_(wanted)))
    return {(row.customer_id, row.event_type): row.last_at for row in rows}


# A merge (`db.merges.hand_over`): what the absorbed keys did, the survivor did (the latest of each event type).
HAND_OVER_SQL = (
    "INSERT INTO last_events (customer_id, event_type, last_at) "
    "SELECT :survivor, e.event_type, max(e.last_at) FROM last_events e WHERE e.customer_id = ANY(:absorbed) "
    "GROUP BY e.event_type "
    "ON CONFLICT (customer_id, event_type) DO UPDATE SET last_at = greatest(last_events.last_at, excluded.last_at)")
