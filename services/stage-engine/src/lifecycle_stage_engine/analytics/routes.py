"""The analytics API: every figure of the dashboard as JSON, and any segment as CSV (API token).

Every figure takes the same filters (`Filtered`): `source` and `channel`, the customer's acquisition, and
a date range `start`/`end`, [start, end). On the history figures (stages, funnel, cohorts, moves) the range
is on the event time; on the scores (RFM, CLV, churn, the CSV export) it chooses the customers whose first
order that still counts falls in it. Scores are those of the latest refresh (`scored_at`, None before the
first); fits and refreshes are asked for with the admin token and run in the background. Money is in the
shop's currency (`LIFECYCLE_STAGE_ENGINE_CURRENCY`, served as `currency` with the CLV figures).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from lifecycle_shared.auth import AdminAccess, ApiAccess
from lifecycle_shared.http import Engine, Settings, errors
from lifecycle_shared.stages import Stage
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_stage_engine.analytics.clv import ChurnBand
from lifecycle_stage_engine.analytics.rfm import ROWS, SEGMENTS
from lifecycle_stage_engine.api.deps import Now
from lifecycle_stage_engine.db import analytics as queries
from lifecycle_stage_engine.db import fits, scores
from lifecycle_stage_engine.workers import analytics as worker

router = APIRouter(prefix="/v1/analytics", tags=["analytics"], dependencies=[ApiAccess], responses=errors(401, 403))
# Fits cost minutes of CPU on a large shop: asking for one takes the admin token.
admin_router = APIRouter(prefix="/v1/admin/analytics", tags=["admin"], dependencies=[AdminAccess],
                         responses=errors(401, 403))

DEFAULT_CURRENCY = "USD"
Segment = Literal[SEGMENTS]  # type: ignore[valid-type]
Name = Annotated[str | None, Query(min_length=1, max_length=100, pattern="^[^\x00]+$")]


def filters(source: Name = None, channel: Name = None, start: datetime | None = None,
            end: datetime | None = None) -> queries.Filters:
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and start >= end:
        raise HTTPException(400, "start: must be before end")
    return queries.Filters(source=source, channel=channel, start=start, end=end)


def _utc(moment: datetime | None) -> datetime | None:
    """The moment in UTC (a time without an offset is UTC); 400 when that leaves the calendar (years 1-9999)."""
    if moment is None:
        return None
    try:
        return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone(UTC)
    except OverflowError:
        raise HTTPException(400, f"{moment.isoformat()}: outside the years 1 to 9999 in UTC") from None


Filtered = Annotated[queries.Filters, Depends(filters)]


def _period(chosen: queries.Filters, default_days: int, now: datetime) -> tuple[datetime, datetime]:
    """The asked range; a missing start is `default_days` before the end (now by default)."""
    end = chosen.end or now
    if chosen.start is not None:
        return chosen.start, end
    try:
        return end - timedelta(days=default_days), end
    except OverflowError:  # an end in the first days of year 1
        return datetime.min.replace(tzinfo=UTC), end


class StageMix(BaseModel):
    current: dict[str, int]  # customers per stage now
    series: list[dict[str, Any]]  # [{period: "2026-01-01", customers: {stage: n}}]


@router.get("/stages", response_model=StageMix, responses=errors(400))
async def stage_mix(engine: Engine, chosen: Filtered, now: Now,
                    period: Literal["day", "week", "month"] = "month") -> StageMix:
    """Customers per stage now, and at the end of each period (default: the last two years, by month)."""
    start, end = _period(chosen, 730, now)
    async with engine.connect() as conn:
        try:
            series = await queries.stage_mix(conn, chosen, start=start, end=end, period=period)
        except ValueError as error:  # more periods than a chart can hold
            raise HTTPException(400, str(error)) from None
        return StageMix(current=await queries.stage_counts(conn, chosen), series=series)


class FunnelStage(BaseModel):
    stage: str
    entered: int
    converted: int  # went on to a later journey stage
    conversion: float | None
    drop_off: float | None
    median_days_in_stage: float | None


class Funnel(BaseModel):
    start: datetime
    end: datetime
    stages: list[FunnelStage]


@router.get("/funnel", response_model=Funnel, responses=errors(400))
async def stage_funnel(engine: Engine, chosen: Filtered, now: Now) -> Funnel:
    """Entries, conversion to a later stage, drop-off and median time in stage (default: the last 90 days)."""
    start, end = _period(chosen, 90, now)
    async with engine.connect() as conn:
        figures = await queries.funnel(conn, chosen, start=start, end=end)
    return Funnel(start=start, end=end, stages=[
        FunnelStage(stage=f.stage, entered=f.entered, converted=f.converted, conversion=f.conversion,
                    drop_off=f.drop_off, median_days_in_stage=f.median_days_in_stage) for f in figures])


class CohortOut(BaseModel):
    month: str
    group: str | None
    size: int
    buyers_by_offset: dict[int, int]  # months after the first purchase -> customers who bought in that month
    retention: dict[int, float]  # the same as shares of the cohort


@router.get("/cohorts", response_model=list[CohortOut], responses=errors(400))
async def cohorts(engine: Engine, chosen: Filtered,
                  by: Literal["channel", "source"] | None = None) -> list[CohortOut]:
    """Retention by first-purchase month (cohort months within start/end), optionally per channel or source."""
    async with engine.connect() as conn:
        found = await queries.cohorts(conn, chosen, by=by)
    return [CohortOut(month=c.month, group=c.group, size=c.size, buyers_by_offset=c.buyers_by_offset,
                      retention={k: round(c.share(k), 4) for k in c.buyers_by_offset}) for c in found]


class RfmCell(BaseModel):
    r: int
    fm: int
    segment: str
    customers: int


class RfmSnapshot(BaseModel):
    scored_at: datetime
    sizes: dict[str, int]
    movement: list[tuple[str | None, str | None, int]]  # (from, to, customers) since the refresh before


class Rfm(BaseModel):
    scored_at: datetime | None  # the latest refresh; None before the first
    grid: list[RfmCell]
    segments: dict[str, int]
    history: list[RfmSnapshot]  # the whole shop's, whatever the filters


@router.get("/rfm", response_model=Rfm, responses=errors(400))
async def rfm(engine: Engine, chosen: Filtered, history: Annotated[int, Query(ge=1, le=500)] = 30) -> Rfm:
    """The R × FM grid with counts and the segment sizes, of the customers the filters choose (`source`,
    `channel`: their acquisition; `start`/`end`: their first order in [start, end)); and the whole shop's
    segment sizes and movement over the last refreshes."""
    async with engine.connect() as conn:
        counts = await scores.rfm_counts(conn, chosen)
        snapshots = await scores.snapshots(conn, limit=history)
    grid = [RfmCell(r=r, fm=fm, segment=ROWS[r][fm - 1], customers=counts.get((r, fm), 0))
            for r in range(5, 0, -1) for fm in range(1, 6)]
    segments = dict.fromkeys(SEGMENTS, 0)
    for cell in grid:
        segments[cell.segment] += cell.customers
    return Rfm(scored_at=snapshots[0].scored_at if snapshots else None, grid=grid, segments=segments,
               history=[RfmSnapshot(scored_at=s.scored_at, sizes=s.sizes, movement=s.movement)
                        for s in reversed(snapshots)])


class Bucket(BaseModel):
    low: float
    high: float
    customers: int


class Clv(BaseModel):
    scored_at: datetime | None  # the latest refresh; None before the first
    fit: dict[str, Any] | None  # the refresh's fit: parameters, log-likelihood, n, standard errors, problems
    currency: str  # of every amount (LIFECYCLE_STAGE_ENGINE_CURRENCY)
    customers: int
    total: float
    distribution: list[Bucket]  # total CLV, 20 buckets up to the 99th percentile (the last holds the rest)
    top: list[dict[str, Any]]


@router.get("/clv", response_model=Clv, responses=errors(400))
async def customer_value(engine: Engine, chosen: Filtered, settings: Settings,
                         top: Annotated[int, Query(ge=1, le=200)] = 20) -> Clv:
    """The CLV distribution, the top customers by total CLV (of the customers the filters choose: `source`,
    `channel` by acquisition, `start`/`end` by first order in [start, end)) and the fit they were scored
    with (the whole shop's)."""
    async with engine.connect() as conn:
        fit = await fits.latest_refresh(conn)
        stats = await scores.clv_stats(conn, chosen)
        high = float(stats.p99 or 0) or 1.0
        buckets = await scores.clv_buckets(conn, chosen, high=high)
        leaders = await scores.top_by_clv(conn, chosen, limit=top)
    top_rows = [{**row.document, "customer_id": row.customer_id} for row in leaders]
    step = high / 20
    return Clv(scored_at=fit.finished_at if fit else None, fit=fit.result if fit else None,
               currency=getattr(settings, "currency", DEFAULT_CURRENCY), customers=stats.n,
               total=float(stats.total),
               distribution=[Bucket(low=round((b - 1) * step, 2), high=round(b * step, 2),
                                    customers=buckets.get(b, 0) + (buckets.get(0, 0) if b == 1 else 0))
                             for b in range(1, 21)], top=top_rows)


@router.get("/transitions", response_model=list[dict[str, Any]])
async def recent_transitions(engine: Engine, chosen: Filtered,
                             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    """The latest stage moves (event time), newest first."""
    async with engine.connect() as conn:
        return await queries.recent_transitions(conn, chosen, limit=limit)


CSV_COLUMNS = ("customer_id", "email", "stage", "segment", "r", "f", "m", "orders", "recency_days", "historic_clv",
               "margin", "predicted_clv", "total_clv", "p_alive", "churn_risk", "churn_band",
               "avg_days_between_orders", "next_order_expected_at")


@router.get("/customers.csv", response_class=StreamingResponse, responses={
    200: {"content": {"text/csv": {}}, "description": "One row per scored customer"}, **errors(400)})
async def export_segment(engine: Engine, chosen: Filtered, segment: Segment | None = None,
                         stage: Stage | None = None, churn_band: ChurnBand | None = None) -> StreamingResponse:
    """Scored customers (optionally one RFM segment, stage or churn band; the filters as for /clv: `source`,
    `channel` by acquisition, `start`/`end` by first order in [start, end)) as CSV, with their email if
    known. Text cells that a spreadsheet would run as a formula are quoted with a leading apostrophe."""

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        async with engine.connect() as conn:
            async for row in scores.scored_customers(conn, chosen, segment=segment, stage=stage, churn_band=churn_band):
                document = row.document
                writer.writerow([_cell(row.customer_id), _cell(row.email), row.stage, row.segment,
                                 *(document.get(name) for name in CSV_COLUMNS[4:])])
                if out.tell() > 65536:
                    yield out.getvalue()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue()

    name = (segment or stage or churn_band or "customers").replace(" ", "-").replace("'", "").lower()
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _cell(value: str | None) -> str | None:
    """CSV injection: a spreadsheet runs a cell starting with = + - @ (or a tab/CR) as a formula."""
    return "'" + value if value and value[0] in "=+-@\t\r" else value


class FitRequest(BaseModel):
    calibration_end: datetime | None = Field(
        None, description="Fit on the orders up to this date (inclusive); omitted: refresh every score now")
    unit: Literal["D", "W"] = "D"


class FitOut(BaseModel):
    id: str
    kind: str
    status: str
    calibration_end: datetime | None
    unit: str
    result: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None


@admin_router.post("/fits", status_code=202, response_model=FitOut, responses=errors(400))
async def request_fit(engine: Engine, body: FitRequest) -> FitOut:
    """Ask for a fit (admin token): with `calibration_end`, BG/NBD and Gamma-Gamma on the orders up to
    then in `unit`; without, a full refresh of every customer's scores. Poll `GET /v1/analytics/fits/{id}`."""
    async with engine.begin() as conn:
        fit_id = await worker.request_fit(conn, calibration_end=_utc(body.calibration_end), unit=body.unit)
    return await _fit(engine, fit_id)


@admin_router.get("/fits/{fit_id}", response_model=FitOut, responses=errors(404))
async def get_fit_as_admin(engine: Engine, fit_id: uuid.UUID) -> FitOut:
    """A fit or refresh asked for, with the admin token (for a caller that holds only that token)."""
    return await _fit(engine, str(fit_id))


@router.get("/fits", response_model=list[FitOut])
async def list_fits(engine: Engine, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[FitOut]:
    async with engine.connect() as conn:
        return [FitOut(**row._mapping) for row in await fits.newest(conn, limit=limit)]


@router.get("/fits/{fit_id}", response_model=FitOut, responses=errors(404))
async def get_fit(engine: Engine, fit_id: uuid.UUID) -> FitOut:
    return await _fit(engine, str(fit_id))


async def _fit(engine: AsyncEngine, fit_id: str) -> FitOut:
    async with engine.connect() as conn:
        row = await fits.fit(conn, fit_id)
    if row is None:
        raise HTTPException(404, f"no fit '{fit_id}'")
    return FitOut(**row._mapping)
