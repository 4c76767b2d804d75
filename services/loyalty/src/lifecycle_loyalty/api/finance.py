"""The finance team's API (Bearer admin token): what the points are worth (docs/loyalty-finance.md).

`GET/PUT /v1/admin/finance/settings`: value per point, expected redemption rate, breakage fallback; a change
takes effect at the service's clock's now and every earlier one is kept (figures of a past moment use the
estimate then in force). `GET /v1/admin/finance/roll-forward?from=&to=`: points, opening to closing.
`GET /v1/admin/finance/liability?at=`: outstanding points in money net of breakage (by earning-month cohort),
with the points expiring by month. `GET /v1/admin/finance/deferred-revenue?from=&to=`: IFRS 15.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from lifecycle_shared.auth import AdminAccess
from lifecycle_shared.http import Engine, errors
from pydantic import AfterValidator, AwareDatetime, BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.api.deps import Now
from lifecycle_loyalty.db import finance
from lifecycle_loyalty.domain.finance import (
    DeferredRevenue,
    FinanceSettings,
    Sale,
    breakage,
    deferred_revenue,
    liability,
    roll_forward,
)

router = APIRouter(prefix="/v1/admin/finance", tags=["finance"], dependencies=[AdminAccess],
                   responses=errors(401, 403))

def _in_range(value: datetime) -> datetime:
    """In UTC, between the years 1900 and 9000 (beyond, PostgreSQL's timestamps and Python's overflow)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError as error:
        raise ValueError("out of range") from error
    if not 1900 <= utc.year <= 9000:
        raise ValueError("between the years 1900 and 9000")
    return utc


Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]
From = Annotated[Moment, Query(alias="from", description="start of the period (inclusive, with a zone)")]
To = Annotated[Moment, Query(alias="to", description="end of the period (exclusive, with a zone)")]


class RollForwardOut(BaseModel):
    """opening + issued - redeemed - expired + sum(adjustments) = closing, in points; closing is the sum of
    every ledger entry before `to`."""

    opening: int
    issued: int  # earn and bonus entries
    redeemed: int  # spends, net of cancelled redemptions
    expired: int
    adjustments: dict[str, int]  # by entry kind: reverse, adjust, debt, settlement, move_in/move_out (net zero)
    closing: int


class CohortOut(BaseModel):
    month: str
    earned: int
    expired: int
    remaining: int
    mature: bool


class ExpiringOut(BaseModel):
    month: str
    points: int
    lots: int


class LiabilityOut(BaseModel):
    at: datetime
    outstanding_points: int
    breakage_rate: Decimal
    breakage_method: str  # mature_cohorts | fallback
    liability: dict[str, Decimal]  # by currency of `value_per_point`
    cohorts: list[CohortOut]
    expiring_by_month: list[ExpiringOut]


class DeferredPositionOut(BaseModel):
    sales: Decimal
    allocated_to_goods: Decimal
    allocated_to_points: Decimal
    points_issued: int
    points_redeemed: int
    expected_redemptions: Decimal
    recognised: Decimal  # cumulative
    contract_liability: Decimal


class DeferredRevenueOut(BaseModel):
    currency: str
    opening: DeferredPositionOut  # at `from`
    closing: DeferredPositionOut  # at `to`
    allocated_to_points: Decimal  # in the period
    revenue_recognised: Decimal  # in the period: closing.recognised - opening.recognised


def _period(start: datetime, end: datetime) -> None:
    if start >= end:
        raise HTTPException(400, "from: must be before to")


@router.get("/settings", response_model=FinanceSettings)
async def get_settings(engine: Engine, now: Now) -> FinanceSettings:
    async with engine.connect() as conn:
        return finance.in_force(await finance.settings_history(conn), now)


@router.put("/settings", response_model=FinanceSettings, responses=errors(400))
async def put_settings(body: FinanceSettings, engine: Engine, now: Now) -> FinanceSettings:
    """Put new estimates in force from now (the earlier ones stay, for the figures of earlier moments)."""
    async with engine.begin() as conn:
        await finance.put_settings(conn, body, at=now)
    return body


@router.get("/roll-forward", response_model=RollForwardOut, responses=errors(400))
async def get_roll_forward(start: From, end: To, engine: Engine) -> RollForwardOut:
    _period(start, end)
    async with engine.connect() as conn:
        before = await finance.points_by_kind(conn, since=None, before=start)
        during = await finance.points_by_kind(conn, since=start, before=end)
    rf = roll_forward(before, during)
    return RollForwardOut(opening=rf.opening, issued=rf.issued, redeemed=rf.redeemed, expired=rf.expired,
                          adjustments=rf.adjustments, closing=rf.closing)


@router.get("/liability", response_model=LiabilityOut)
async def get_liability(engine: Engine, now: Now,
                        at: Annotated[Moment | None, Query(description="default: now")] = None) -> LiabilityOut:
    """Breakage and the expiry detail are of the lots as they stand now; the outstanding points at `at`."""
    when = at or now
    async with engine.connect() as conn:
        settings = finance.in_force(await finance.settings_history(conn), when)
        points = await finance.outstanding(conn, before=when)
        cohorts = await finance.cohorts(conn, now=now)
        expiring = await finance.expiring_by_month(conn, now=now)
    estimate = breakage(cohorts, settings.breakage_fallback)
    return LiabilityOut(
        at=when, outstanding_points=points, breakage_rate=estimate.rate, breakage_method=estimate.method,
        liability={currency: liability(points, vpp, estimate.rate, settings.decimals)
                   for currency, vpp in sorted(settings.value_per_point.items())},
        cohorts=[CohortOut(month=c.month, earned=c.earned, expired=c.expired, remaining=c.remaining, mature=c.mature)
                 for c in cohorts],
        expiring_by_month=[ExpiringOut(**row) for row in expiring])


def _position(p: DeferredRevenue) -> DeferredPositionOut:
    return DeferredPositionOut(sales=p.sales, allocated_to_goods=p.allocated_to_goods,
                               allocated_to_points=p.allocated_to_points, points_issued=p.points_issued,
                               points_redeemed=p.points_redeemed, expected_redemptions=p.expected_redemptions,
                               recognised=p.recognised, contract_liability=p.contract_liability)


async def _position_at(conn: AsyncConnection, history: list[tuple[datetime, FinanceSettings]],
                       at: datetime) -> DeferredRevenue:
    estimate = finance.in_force(history, at)
    sold = [Sale(price=price, points=points, settings=finance.in_force(history, completed_at))
            for completed_at, price, currency, points in await finance.sales(conn, before=at)
            if (currency or estimate.currency) == estimate.currency]
    return deferred_revenue(sold, await finance.redeemed_before(conn, at), estimate)


@router.get("/deferred-revenue", response_model=DeferredRevenueOut, responses=errors(400))
async def get_deferred_revenue(start: From, end: To, engine: Engine) -> DeferredRevenueOut:
    """IFRS 15, points as a material right: each sale in the reporting currency allocated between goods and
    points by relative stand-alone selling price (the estimate in force at the sale); the points' share
    recognised as points are redeemed, against the total expected to be redeemed (the estimate in force at
    each end of the period)."""
    _period(start, end)
    async with engine.connect() as conn:
        history = await finance.settings_history(conn)
        opening = await _position_at(conn, history, start)
        closing = await _position_at(conn, history, end)
    return DeferredRevenueOut(currency=finance.in_force(history, end).currency, opening=_position(opening),
                              closing=_position(closing),
                              allocated_to_points=closing.allocated_to_points - opening.allocated_to_points,
                              revenue_recognised=closing.recognised - opening.recognised)
