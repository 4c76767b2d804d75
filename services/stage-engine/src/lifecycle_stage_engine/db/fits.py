"""`clv_fits`: requested and scheduled model fits, their queue and their results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db.repository import json_text
from lifecycle_stage_engine.db.scores import REFRESH_LOCK

REQUEST_LOCK = REFRESH_LOCK + 1  # pg_advisory_xact_lock key: checking and queueing requests
STALE_AFTER = "30 minutes"  # a request taken this long ago and not finished: its instance died
FITS = "SELECT id::text, kind, status, calibration_end, unit, result, created_at, finished_at FROM clv_fits"


async def lock_requests(conn: AsyncConnection) -> None:
    """Until the transaction ends, no other request is checked or queued."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REQUEST_LOCK})


async def waiting(conn: AsyncConnection, *, calibration_end: datetime | None, unit: str) -> str | None:
    """The id of a queued request for the same fit."""
    return (await conn.execute(text(
        "SELECT id::text FROM clv_fits WHERE status = 'queued' AND unit = :unit "
        "AND calibration_end IS NOT DISTINCT FROM CAST(:end AS timestamptz) LIMIT 1"),
        {"end": calibration_end, "unit": unit})).scalar()


async def queue(conn: AsyncConnection, *, calibration_end: datetime | None, unit: str) -> str:
    """A new queued request; its id."""
    fit_id = str(uuid.uuid4())
    await conn.execute(text("INSERT INTO clv_fits (id, kind, calibration_end, unit, status) "
                            "VALUES (:id, 'requested', :end, :unit, 'queued')"),
                       {"id": fit_id, "end": calibration_end, "unit": unit})
    return fit_id


async def add_finished(conn: AsyncConnection, *, kind: str, unit: str, status: str, result: dict[str, Any],
                       now: datetime) -> None:
    """A fit nobody asked for (a scheduled refresh), stored finished."""
    await conn.execute(text("INSERT INTO clv_fits (id, kind, unit, status, result, finished_at) "
                            "VALUES (:id, :kind, :unit, :status, CAST(:result AS jsonb), :now)"),
                       {"id": str(uuid.uuid4()), "kind": kind, "unit": unit, "status": status,
                        "result": json_text(result), "now": now})


async def finish(conn: AsyncConnection, fit_id: str, *, status: str, result: dict[str, Any], now: datetime) -> None:
    await conn.execute(text("UPDATE clv_fits SET status = :status, result = CAST(:result AS jsonb), "
                            "finished_at = :now WHERE id = :id"),
                       {"id": fit_id, "status": status, "result": json_text(result), "now": now})


async def claim(conn: AsyncConnection, now: datetime) -> Row | None:
    """The oldest queued request (or one whose instance died), marked running: (id, calibration_end, unit)."""
    return (await conn.execute(text(
        "UPDATE clv_fits SET status = 'running', started_at = :now WHERE id = (SELECT id FROM clv_fits "
        "WHERE status = 'queued' "
        # A request whose instance died while running it (kill -9, a deploy) is taken again.
        f"OR (status = 'running' AND started_at < CAST(:now AS timestamptz) - interval '{STALE_AFTER}') "
        "ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, calibration_end, unit"),
        {"now": now})).first()


async def requeue(conn: AsyncConnection, fit_id: str) -> None:
    await conn.execute(text("UPDATE clv_fits SET status = 'queued', started_at = NULL WHERE id = :id"),
                       {"id": fit_id})


async def latest_refresh(conn: AsyncConnection) -> Row | None:
    """The last finished refresh's fit: (result, finished_at)."""
    return (await conn.execute(text("SELECT result, finished_at FROM clv_fits WHERE calibration_end IS NULL AND "
                                    "status = 'done' ORDER BY finished_at DESC LIMIT 1"))).first()


async def newest(conn: AsyncConnection, *, limit: int) -> list[Row]:
    return list(await conn.execute(text(f"{FITS} ORDER BY created_at DESC LIMIT :n"), {"n": limit}))


async def fit(conn: AsyncConnection, fit_id: str) -> Row | None:
    return (await conn.execute(text(f"{FITS} WHERE id::text = :id"), {"id": fit_id})).first()
