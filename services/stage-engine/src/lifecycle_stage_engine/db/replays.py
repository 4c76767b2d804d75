"""`replay_jobs`: replays and dry runs, their progress and report; the profiles in a job's scope."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db.models import profiles, replay_jobs


def _in_scope(scope: dict[str, Any]):
    live = [profiles.c.merged_into.is_(None)]
    if scope.get("customer_id"):
        live.append(profiles.c.customer_id == scope["customer_id"])
    if scope.get("stage"):
        live.append(profiles.c.stage == scope["stage"])
    return live


async def count_in_scope(conn: AsyncConnection, scope: dict[str, Any]) -> int:
    return (await conn.execute(select(func.count()).select_from(profiles).where(*_in_scope(scope)))).scalar_one()


async def add(conn: AsyncConnection, *, scope: dict[str, Any], rules: dict[str, Any], dry_run: bool, total: int,
              result: dict[str, Any]) -> str:
    """A queued job; its id."""
    job_id = str(uuid.uuid4())
    await conn.execute(replay_jobs.insert().values(id=job_id, dry_run=dry_run, scope=scope, rules=rules,
                                                   status="queued", total=total, result=result))
    return job_id


async def take_next(conn: AsyncConnection) -> Row | None:
    """The oldest unfinished job no other transaction holds, locked until this one ends."""
    return (await conn.execute(select(replay_jobs).where(replay_jobs.c.status.in_(("queued", "running")))
                               .order_by(replay_jobs.c.created_at).limit(1)
                               .with_for_update(skip_locked=True))).first()


async def page_of_profiles(conn: AsyncConnection, scope: dict[str, Any], *, after: Any, limit: int) -> list[Row]:
    """The profiles in scope after the cursor (None: from the first), by id, locked."""
    query = select(profiles).where(*_in_scope(scope))
    if after:
        query = query.where(profiles.c.id > after)
    return list((await conn.execute(query.order_by(profiles.c.id).limit(limit).with_for_update())).all())


async def fail(conn: AsyncConnection, job_id: Any, *, result: dict[str, Any], now: datetime) -> None:
    await conn.execute(update(replay_jobs).where(replay_jobs.c.id == job_id).values(
        status="failed", finished_at=now, result=result))


async def advance(conn: AsyncConnection, job_id: Any, *, done: int, result: dict[str, Any], cursor: Any,
                  finished_at: datetime | None) -> None:
    """The job's progress after a page; finished (status done) when `finished_at` is given."""
    await conn.execute(update(replay_jobs).where(replay_jobs.c.id == job_id).values(
        status="done" if finished_at is not None else "running", done=done, result=result, cursor=cursor,
        finished_at=finished_at))


async def job(conn: AsyncConnection, job_id: str) -> Row | None:
    return (await conn.execute(select(replay_jobs).where(replay_jobs.c.id == job_id))).first()
