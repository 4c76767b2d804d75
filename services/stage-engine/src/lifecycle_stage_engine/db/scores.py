"""`customer_scores` and `rfm_snapshots`: the latest refresh's scores and the segment sizes over refreshes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

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


async def rfm_counts(conn: AsyncConnection) -> dict[tuple[int, int], int]:
    """(r, fm) -> customers."""
    return {(row.r, row.fm): row.n for row in await conn.execute(text(
        "SELECT (document->>'r')::int AS r, (document->>'fm')::int AS fm, count(*) AS n "
        "FROM customer_scores GROUP BY 1, 2"))}


async def snapshots(conn: AsyncConnection, *, limit: int) -> list[Row]:
    """The newest first: (scored_at, sizes, movement)."""
    return list((await conn.execute(text("SELECT scored_at, sizes, movement FROM rfm_snapshots "
                                          "ORDER BY scored_at DESC LIMIT :n"), {"n": limit})).all())


async def clv_stats(conn: AsyncConnection) -> Row:
    """(n, total, p99) of total CLV."""
    return (await conn.execute(text(
        "SELECT count(*) AS n, coalesce(sum(total_clv), 0) AS total, "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY total_clv) AS p99 FROM customer_scores"))).one()


async def clv_buckets(conn: AsyncConnection, *, high: float) -> dict[int, int]:
    """Bucket (1..20 of [0, high]; 0 below, 20 also above) -> customers."""
    return {row.b: row.n for row in await conn.execute(text(
        "SELECT least(width_bucket(total_clv, 0, :high, 20), 20) AS b, count(*) AS n FROM customer_scores "
        "GROUP BY 1"), {"high": high})}


async def top_by_clv(conn: AsyncConnection, *, limit: int) -> list[Row]:
    """(customer_id, document), the highest total CLV first."""
    return list(await conn.execute(text(
        "SELECT customer_id, document FROM customer_scores ORDER BY total_clv DESC, profile_id LIMIT :n"),
        {"n": limit}))


async def scored_customers(conn: AsyncConnection, *, segment: str | None, stage: str | None,
                           churn_band: str | None) -> AsyncIterator[Row]:
    """Streamed, the highest total CLV first: (customer_id, email, stage, segment, document) of the customers
    in the segment, stage and churn band given (None: any)."""
    conditions: list[str] = ["TRUE"]
    params: dict[str, str] = {}
    for column, value in (("s.segment", segment), ("p.stage", stage), ("s.document->>'churn_band'", churn_band)):
        if value is not None:
            conditions.append(f"{column} = :v{len(params)}")
            params[f"v{len(params)}"] = str(value)  # Stage and ChurnBand are StrEnums
    statement = text(
        "SELECT s.customer_id, p.traits->>'email' AS email, p.stage, s.segment, s.document FROM customer_scores s "
        f"JOIN profiles p ON p.id = s.profile_id WHERE {' AND '.join(conditions)} ORDER BY s.total_clv DESC")
    async for row in await conn.stream(statement, params):
        yield row
