"""`customer_scores` and `rfm_snapshots`: the latest refresh's scores and the segment sizes over refreshes.

The reads of the scores take the dashboard's `Filters`: the customer's acquisition `source` and
`channel`, and `start`/`end` choose the customers whose first order (that still counts) falls in
[start, end). Snapshots are the whole shop's, unfiltered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db.analytics import Filters
from lifecycle_stage_engine.db.repository import json_text

REFRESH_LOCK = 0x616E616C79746963  # pg_try_advisory_xact_lock key: "analytic"
CHUNK = 5000

_INSERT_SCORES = text(
    "INSERT INTO customer_scores (profile_id, customer_id, scored_at, document, segment, total_clv) "
    "SELECT x.profile_id, x.customer_id, :at, x.document, x.segment, x.total_clv "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(profile_id uuid, customer_id text, document jsonb, "
    "segment text, total_clv numeric)")


async def lock_refresh(conn: AsyncConnection) -> bool:
    """Whether this transaction is now the only refresh (False: another instance is refreshing)."""
    return bool((await conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK})).scalar())


async def segments(conn: AsyncConnection) -> dict[str, str]:
    """profile id -> RFM segment, as last scored."""
    return {row.profile_id: row.segment
            for row in await conn.execute(text("SELECT profile_id::text, segment FROM customer_scores"))}


async def replace(conn: AsyncConnection, rows: list[dict[str, Any]], *, at: datetime) -> None:
    """Every score, in chunks of CHUNK rows (profile_id, customer_id, document, segment, total_clv)."""
    await conn.execute(text("DELETE FROM customer_scores"))
    for start in range(0, len(rows), CHUNK):
        await conn.execute(_INSERT_SCORES, {"at": at, "rows": json_text(rows[start:start + CHUNK])})


async def add_snapshot(conn: AsyncConnection, *, at: datetime, sizes: dict[str, int],
                       movement: list[list[Any]]) -> None:
    await conn.execute(text("INSERT INTO rfm_snapshots (scored_at, sizes, movement) VALUES (:at, "
                            "CAST(:sizes AS jsonb), CAST(:movement AS jsonb)) ON CONFLICT DO NOTHING"),
                       {"at": at, "sizes": json_text(sizes), "movement": json_text(movement)})


async def last_scored_at(conn: AsyncConnection) -> datetime | None:
    return (await conn.execute(text("SELECT max(scored_at) FROM rfm_snapshots"))).scalar()


SCORED = "customer_scores s JOIN profiles p ON p.id = s.profile_id"
EVERYONE = Filters()


async def rfm_counts(conn: AsyncConnection, filters: Filters = EVERYONE) -> dict[tuple[int, int], int]:
    """(r, fm) -> customers."""
    return {(row.r, row.fm): row.n for row in await conn.execute(text(
        "SELECT (s.document->>'r')::int AS r, (s.document->>'fm')::int AS fm, count(*) AS n "
        f"FROM {SCORED} WHERE {filters.scored()} GROUP BY 1, 2"), filters.params())}


async def snapshots(conn: AsyncConnection, *, limit: int) -> list[Row]:
    """The newest first: (scored_at, sizes, movement)."""
    return list((await conn.execute(text("SELECT scored_at, sizes, movement FROM rfm_snapshots "
                                          "ORDER BY scored_at DESC LIMIT :n"), {"n": limit})).all())


async def clv_stats(conn: AsyncConnection, filters: Filters = EVERYONE) -> Row:
    """(n, total, p99) of total CLV."""
    return (await conn.execute(text(
        "SELECT count(*) AS n, coalesce(sum(s.total_clv), 0) AS total, "
        f"percentile_cont(0.99) WITHIN GROUP (ORDER BY s.total_clv) AS p99 FROM {SCORED} WHERE {filters.scored()}"),
        filters.params())).one()


async def clv_buckets(conn: AsyncConnection, filters: Filters = EVERYONE, *, high: float) -> dict[int, int]:
    """Bucket (1..20 of [0, high]; 0 below, 20 also above) -> customers."""
    return {row.b: row.n for row in await conn.execute(text(
        f"SELECT least(width_bucket(s.total_clv, 0, :high, 20), 20) AS b, count(*) AS n FROM {SCORED} "
        f"WHERE {filters.scored()} GROUP BY 1"), {**filters.params(), "high": high})}


async def top_by_clv(conn: AsyncConnection, filters: Filters = EVERYONE, *, limit: int) -> list[Row]:
    """(customer_id, document), the highest total CLV first."""
    return list(await conn.execute(text(
        f"SELECT s.customer_id, s.document FROM {SCORED} WHERE {filters.scored()} "
        "ORDER BY s.total_clv DESC, s.profile_id LIMIT :n"), {**filters.params(), "n": limit}))


async def scored_customers(conn: AsyncConnection, filters: Filters = EVERYONE, *, segment: str | None,
                           stage: str | None, churn_band: str | None) -> AsyncIterator[Row]:
    """Streamed, the highest total CLV first: (customer_id, email, stage, segment, document) of the customers
    in the segment, stage and churn band given (None: any) who pass the filters."""
    conditions: list[str] = [filters.scored()]
    params: dict[str, Any] = filters.params()
    for column, value in (("s.segment", segment), ("p.stage", stage), ("s.document->>'churn_band'", churn_band)):
        if value is not None:
            name = f"v{len(conditions)}"
            conditions.append(f"{column} = :{name}")
            params[name] = str(value)  # Stage and ChurnBand are StrEnums
    statement = text(
        "SELECT s.customer_id, p.traits->>'email' AS email, p.stage, s.segment, s.document "
        f"FROM {SCORED} WHERE {' AND '.join(conditions)} ORDER BY s.total_clv DESC")
    async for row in await conn.stream(statement, params):
        yield row
