"""`rule_sets`: every stored rule set by version, and which one is in force."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db.models import profiles, rule_sets


async def in_force(conn: AsyncConnection) -> dict[str, Any] | None:
    """The document of the rule set activated last."""
    row = (await conn.execute(select(rule_sets.c.document).order_by(rule_sets.c.activated_at.desc()).limit(1))).first()
    return None if row is None else row.document


async def store(conn: AsyncConnection, *, version: str, document: dict[str, Any]) -> dict[str, Any]:
    """Stores the version unless it exists; the document stored under it (this one, or the earlier one)."""
    stmt = insert(rule_sets).values(version=version, document=document)
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["version"]))
    return (await conn.execute(select(rule_sets.c.document).where(rule_sets.c.version == version))).scalar_one()


async def activate(conn: AsyncConnection, version: str) -> None:
    await conn.execute(update(rule_sets).where(rule_sets.c.version == version).values(activated_at=func.now()))


async def move_pending_moments(conn: AsyncConnection, due_at: datetime) -> None:
    """Every profile with a pending moment is due at `due_at` instead."""
    await conn.execute(update(profiles).where(profiles.c.due_at.is_not(None)).values(due_at=due_at))
