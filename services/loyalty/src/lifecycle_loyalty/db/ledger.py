"""All SQL of the loyalty service. Never commits."""

from __future__ import annotations

from typing import Any

from lifecycle_shared.events import derived_event_id
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db.models import ledger_entries


async def append(conn: AsyncConnection, *, customer_id: str, kind: str, points: int, rule: str,
                 cause_event_id: str, order_id: str | None = None) -> None:
    await conn.execute(insert(ledger_entries).values(
        id=derived_event_id(cause_event_id, "loyalty", rule), customer_id=customer_id, kind=kind,
        points=points, rule=rule, cause_event_id=cause_event_id, order_id=order_id,
    ).on_conflict_do_nothing(index_elements=["id"]))


async def points_for_order(conn: AsyncConnection, *, customer_id: str, order_id: str) -> int:
    """Net points an order still holds (earned minus already reversed)."""
    return (await conn.execute(
        select(func.coalesce(func.sum(ledger_entries.c.points), 0))
        .where(ledger_entries.c.customer_id == customer_id, ledger_entries.c.order_id == order_id)
    )).scalar_one()


async def balance(conn: AsyncConnection, *, customer_id: str) -> dict[str, int]:
    row = (await conn.execute(
        select(func.coalesce(func.sum(ledger_entries.c.points), 0).label("balance"),
               func.coalesce(func.sum(ledger_entries.c.points).filter(ledger_entries.c.points > 0), 0)
               .label("earned"),
               func.count().label("entries"))
        .where(ledger_entries.c.customer_id == customer_id)
    )).one()
    return {"balance": int(row.balance), "earned": int(row.earned), "entries": int(row.entries)}


async def entries(conn: AsyncConnection, *, customer_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(
        select(ledger_entries).where(ledger_entries.c.customer_id == customer_id)
        .order_by(ledger_entries.c.seq)
    )).mappings().all()
    return [dict(row) for row in rows]
