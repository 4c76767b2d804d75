"""The SQL of the finance figures: ledger sums by kind and time, cohorts of lots, sales. Never commits.
An entry's time is when it happened (`effective_at`, the cause's time), else when it was written."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db.models import finance_settings, ledger_entries, lots, orders
from lifecycle_loyalty.domain.finance import REDEEMED, Cohort, FinanceSettings

AT = func.coalesce(ledger_entries.c.effective_at, ledger_entries.c.created_at)


async def put_settings(conn: AsyncConnection, settings: FinanceSettings, *, at: datetime) -> None:
    await conn.execute(insert(finance_settings).values(effective_at=at, body=settings.model_dump(mode="json")))


async def settings_history(conn: AsyncConnection) -> list[tuple[datetime, FinanceSettings]]:
    rows = await conn.execute(select(finance_settings.c.effective_at, finance_settings.c.body)
                              .order_by(finance_settings.c.effective_at, finance_settings.c.seq))
    return [(row.effective_at, FinanceSettings.model_validate(row.body)) for row in rows]


def in_force(history: list[tuple[datetime, FinanceSettings]], at: datetime) -> FinanceSettings:
    """The settings effective at `at` (the latest at or before it); the defaults before any."""
    chosen = FinanceSettings()
    for effective_at, settings in history:
        if effective_at <= at:
            chosen = settings
    return chosen


async def points_by_kind(conn: AsyncConnection, *, since: datetime | None, before: datetime) -> dict[str, int]:
    stmt = (select(ledger_entries.c.kind, func.sum(ledger_entries.c.points)).where(AT < before)
            .group_by(ledger_entries.c.kind))
    if since is not None:
        stmt = stmt.where(AT >= since)
    return {kind: int(points) for kind, points in await conn.execute(stmt)}


async def redeemed_before(conn: AsyncConnection, before: datetime) -> int:
    total = (await conn.execute(select(func.coalesce(func.sum(ledger_entries.c.points), 0))
                                .where(ledger_entries.c.kind.in_(REDEEMED), AT < before))).scalar()
    return -int(total or 0)


async def cohorts(conn: AsyncConnection, *, now: datetime) -> list[Cohort]:
    """Lots by earning month (UTC): earned, expired unredeemed (their expire entries), still held; mature when
    every lot of the month is empty or past its expiry."""
    month = func.to_char(func.timezone("UTC", lots.c.earned_at), "YYYY-MM")
    expired = (select(ledger_entries.c.lot_id, (-func.sum(ledger_entries.c.points)).label("expired"))
               .where(ledger_entries.c.kind == "expire").group_by(ledger_entries.c.lot_id).subquery())
    done = or_(lots.c.remaining == 0, and_(lots.c.expires_at.is_not(None), lots.c.expires_at <= now))
    rows = await conn.execute(
        select(month.label("month"), func.sum(lots.c.points).label("earned"),
               func.coalesce(func.sum(expired.c.expired), 0).label("expired"),
               func.sum(lots.c.remaining).label("remaining"), func.bool_and(done).label("mature"))
        .select_from(lots.outerjoin(expired, expired.c.lot_id == lots.c.id))
        .group_by(month).order_by(month))
    return [Cohort(month=row.month, earned=int(row.earned), expired=int(row.expired), remaining=int(row.remaining),
                   mature=bool(row.mature)) for row in rows]


async def expiring_by_month(conn: AsyncConnection, *, now: datetime) -> list[dict[str, Any]]:
    """Points held in lots still to expire, by month of expiry (UTC), with how many lots."""
    month = func.to_char(func.timezone("UTC", lots.c.expires_at), "YYYY-MM")
    rows = await conn.execute(
        select(month.label("month"), func.sum(lots.c.remaining).label("points"), func.count().label("lots"))
        .where(lots.c.remaining > 0, lots.c.expires_at.is_not(None), lots.c.expires_at > now)
        .group_by(month).order_by(month))
    return [{"month": row.month, "points": int(row.points), "lots": int(row.lots)} for row in rows]


async def outstanding(conn: AsyncConnection, *, before: datetime) -> int:
    total = (await conn.execute(select(func.coalesce(func.sum(ledger_entries.c.points), 0))
                                .where(AT < before))).scalar()
    return int(total or 0)


async def sales(conn: AsyncConnection, *, before: datetime) -> list[tuple[datetime, Decimal, str | None, int]]:
    """Completed orders before `before` that earned points: (completed_at, amount, currency, points earned)."""
    earned = (select(ledger_entries.c.customer_id, ledger_entries.c.order_id,
                     func.sum(ledger_entries.c.points).label("points"))
              .where(ledger_entries.c.kind == "earn", ledger_entries.c.order_id.is_not(None))
              .group_by(ledger_entries.c.customer_id, ledger_entries.c.order_id).subquery())
    rows = await conn.execute(
        select(orders.c.completed_at, orders.c.amount, orders.c.currency, earned.c.points)
        .select_from(orders.join(earned, and_(earned.c.customer_id == orders.c.customer_id,
                                              earned.c.order_id == orders.c.order_id)))
        .where(orders.c.completed_at < before, orders.c.amount.is_not(None)))
    return [(row.completed_at, Decimal(row.amount), row.currency, int(row.points)) for row in rows]
