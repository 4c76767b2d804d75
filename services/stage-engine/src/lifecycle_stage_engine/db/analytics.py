"""The analytics reads: SQL over the stage engine's own tables, aggregated in PostgreSQL.

The cohort matrix, the funnel and the stage mix are computed by the database (one statement each);
they equal the pure reference functions in `cohorts.py` and `funnel.py` (tested). Orders are the
profiles' own (`facts.orders`: deduplicated by order id, refunded orders removed), so every figure
agrees with the profile API. Filters: the acquisition `source` and `channel` of the customer, and a
date range [start, end) on the event time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from lifecycle_shared.orders import parse_amount
from lifecycle_shared.stages import JOURNEY, RANK
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.analytics.cohorts import Cohort
from lifecycle_stage_engine.analytics.funnel import StageFigures
from lifecycle_stage_engine.analytics.scoring import CustomerOrders


@dataclass(frozen=True)
class Filters:
    source: str | None = None
    channel: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def profiles(self, alias: str = "p") -> str:
        """SQL conditions on the customer (bind :source, :channel)."""
        conditions = [f"{alias}.merged_into IS NULL"]
        if self.source is not None:
            conditions.append(f"{alias}.acquisition->>'source' = :source")
        if self.channel is not None:
            conditions.append(f"{alias}.acquisition->>'channel' = :channel")
        return " AND ".join(conditions)

    def params(self) -> dict[str, Any]:
        return {"source": self.source, "channel": self.channel, "start": self.start, "end": self.end}

    def scored(self, alias: str = "p") -> str:
        """SQL conditions on a scored customer (bind :source, :channel, :start, :end): their acquisition,
        and the date range chooses the customers whose first order that still counts is in [start, end)."""
        conditions = [self.profiles(alias)]
        first = f"(SELECT min((o->>2)::timestamptz) FROM jsonb_array_elements({alias}.facts->'orders') AS o)"
        if self.start is not None:
            conditions.append(f"{first} >= CAST(:start AS timestamptz)")
        if self.end is not None:
            conditions.append(f"{first} < CAST(:end AS timestamptz)")
        return " AND ".join(conditions)

    @property
    def chosen(self) -> bool:
        """Whether any filter is set."""
        return any(value is not None for value in (self.source, self.channel, self.start, self.end))


# --- orders, for the scoring and the fits --------------------------------------------------------

ORDERS = text(
    "SELECT p.id::text AS profile_id, p.customer_id, (o->>2)::timestamptz AS time, (o->>1)::numeric AS amount, "
    "t.properties->'cost' AS cost "
    "FROM profiles p CROSS JOIN LATERAL jsonb_array_elements(p.facts->'orders') AS o "
    "LEFT JOIN touchpoints t ON t.event_id = o->>3 "
    "WHERE p.merged_into IS NULL AND p.facts ? 'orders' ORDER BY p.id")


async def customer_orders(conn: AsyncConnection) -> list[CustomerOrders]:
    """Every live customer with an order: (time, amount, cost) of each order that still counts. The cost
    is the order event's `cost` property when readable (non-negative), else None."""
    customers: list[CustomerOrders] = []
    current: tuple[str, str] | None = None
    orders: list[tuple[datetime, Decimal, Decimal | None]] = []
    for row in await conn.execute(ORDERS):
        if current is not None and row.profile_id != current[0]:
            customers.append(CustomerOrders(current[0], current[1], tuple(orders)))
            orders = []
        current = (row.profile_id, row.customer_id)
        cost = parse_amount(row.cost) if row.cost is not None else None
        orders.append((row.time, row.amount, cost if cost is None or cost >= 0 else None))
    if current is not None:
        customers.append(CustomerOrders(current[0], current[1], tuple(orders)))
    return customers


# --- cohorts -------------------------------------------------------------------------------------

async def cohorts(conn: AsyncConnection, filters: Filters, *, by: str | None = None) -> list[Cohort]:
    """Retention by first-purchase month (cohorts whose month is within [start, end)), optionally by the
    acquisition `channel` or `source` (customers without one in the group "(none)")."""
    group = "NULL::text" if by is None else f"COALESCE(p.acquisition->>'{_group_key(by)}', '(none)')"
    rows = await conn.execute(text(f"""
        WITH months AS (
            SELECT DISTINCT p.id, {group} AS grp,
                   date_trunc('month', (o->>2)::timestamptz AT TIME ZONE 'UTC') AS month
            FROM profiles p CROSS JOIN LATERAL jsonb_array_elements(p.facts->'orders') AS o
            WHERE {filters.profiles()} AND p.facts ? 'orders'),
        firsts AS (SELECT id, grp, min(month) AS cohort FROM months GROUP BY id, grp),
        chosen AS (SELECT * FROM firsts
                   WHERE (CAST(:start AS timestamptz) IS NULL
                          OR cohort >= date_trunc('month', CAST(:start AS timestamptz) AT TIME ZONE 'UTC'))
                     AND (CAST(:end AS timestamptz) IS NULL OR cohort < CAST(:end AS timestamptz) AT TIME ZONE 'UTC'))
        SELECT c.cohort, c.grp, -1 AS offset_months, count(*) AS customers FROM chosen c GROUP BY c.cohort, c.grp
        UNION ALL
        SELECT c.cohort, c.grp,
               (extract(year FROM m.month) - extract(year FROM c.cohort)) * 12
               + extract(month FROM m.month) - extract(month FROM c.cohort), count(*)
        FROM chosen c JOIN months m ON m.id = c.id AND m.month > c.cohort
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3"""), filters.params())
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        key = (row.cohort.strftime("%Y-%m"), row.grp)
        entry = found.setdefault(key, {"size": 0, "buyers": {}})
        if row.offset_months < 0:
            entry["size"] = row.customers
        else:
            entry["buyers"][int(row.offset_months)] = row.customers
    return [Cohort(month=month, group=grp, size=entry["size"], buyers_by_offset=entry["buyers"])
            for (month, grp), entry in sorted(found.items(), key=lambda item: (item[0][0], item[0][1] or ""))]


def _group_key(by: str) -> str:
    if by not in ("channel", "source"):
        raise ValueError(f"cohorts are grouped by channel or source, not {by!r}")
    return by


# --- the stage funnel ---------------------------------------------------------------------------

async def funnel(conn: AsyncConnection, filters: Filters, *, start: datetime, end: datetime) -> list[StageFigures]:
    """As `funnel.funnel` over the live stored history (see there for the definitions)."""
    ranks = " ".join(f"WHEN '{stage}' THEN {rank}" for stage, rank in RANK.items())
    rows = await conn.execute(text(f"""
        WITH steps AS (
            SELECT t.profile_id, t.to_stage, t.event_time,
                   CASE t.to_stage {ranks} END AS rank,
                   lead(t.event_time) OVER later AS next_time,
                   max(CASE t.to_stage {ranks} END) OVER (later ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
                       AS best_later
            FROM transitions t JOIN profiles p ON p.id = t.profile_id
            WHERE t.superseded_at IS NULL AND t.event_time < CAST(:end AS timestamptz) AND {filters.profiles()}
            WINDOW later AS (PARTITION BY t.profile_id ORDER BY t.event_time, t.seq)),
        in_period AS (SELECT * FROM steps WHERE rank IS NOT NULL AND event_time >= CAST(:start AS timestamptz)),
        firsts AS (SELECT DISTINCT ON (profile_id, to_stage) to_stage, rank, best_later FROM in_period
                   ORDER BY profile_id, to_stage, event_time),
        entries AS (SELECT to_stage, count(*) AS entered, count(*) FILTER (WHERE best_later > rank) AS converted
                    FROM firsts GROUP BY to_stage),
        stays AS (SELECT to_stage, percentile_cont(0.5) WITHIN GROUP (
                      ORDER BY extract(epoch FROM next_time - event_time) / 86400) AS median_days
                  FROM in_period WHERE next_time IS NOT NULL GROUP BY to_stage)
        SELECT e.to_stage, e.entered, e.converted, s.median_days
        FROM entries e LEFT JOIN stays s USING (to_stage)"""), {**filters.params(), "start": start, "end": end})
    found = {row.to_stage: row for row in rows}
    return [StageFigures(stage=stage.value, entered=found[stage.value].entered if stage.value in found else 0,
                         converted=found[stage.value].converted if stage.value in found else 0,
                         median_days_in_stage=(round(float(found[stage.value].median_days), 4)
                                               if stage.value in found and found[stage.value].median_days is not None
                                               else None))
            for stage in JOURNEY]


# --- the stage mix over time and the current mix ----------------------------------------------------

MAX_PERIODS = 1000
PERIOD_DAYS = {"day": 1, "week": 7, "month": 28}


def periods(start: datetime, end: datetime, period: str) -> list[date]:
    """The first day (UTC) of each day, week (from Monday, as PostgreSQL's date_trunc) or month that
    overlaps [start, end); ValueError beyond MAX_PERIODS."""
    if period not in PERIOD_DAYS:
        raise ValueError(f"period: day, week or month, not {period!r}")
    if (end - start).days / PERIOD_DAYS[period] > MAX_PERIODS:
        raise ValueError(f"period: more than {MAX_PERIODS} {period}s between start and end; choose a longer period "
                         "or a shorter range")
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC)
    if period == "week":
        first -= timedelta(days=first.weekday())
    elif period == "month":
        first = first.replace(day=1)
    found = []
    while datetime.combine(first, datetime.min.time(), UTC) < last:
        found.append(first)
        if period == "month":
            first = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            first += timedelta(days=PERIOD_DAYS[period])
    return found


async def stage_mix(conn: AsyncConnection, filters: Filters, *, start: datetime, end: datetime,
                    period: str = "month") -> list[dict[str, Any]]:
    """Customers in each stage at the end of each period (day | week | month) overlapping [start, end):
    the running sum, over the whole live history, of moves in (to_stage +1) and out (from_stage −1)."""
    wanted = periods(start, end, period)
    rows = (await conn.execute(text(f"""
        WITH moves AS (
            SELECT date_trunc('{period}', t.event_time AT TIME ZONE 'UTC') AS bucket, t.to_stage AS stage, 1 AS delta
            FROM transitions t JOIN profiles p ON p.id = t.profile_id
            WHERE t.superseded_at IS NULL AND t.event_time < CAST(:end AS timestamptz) AND {filters.profiles()}
            UNION ALL
            SELECT date_trunc('{period}', t.event_time AT TIME ZONE 'UTC'), t.from_stage, -1
            FROM transitions t JOIN profiles p ON p.id = t.profile_id
            WHERE t.superseded_at IS NULL AND t.from_stage IS NOT NULL AND t.event_time < CAST(:end AS timestamptz)
              AND {filters.profiles()})
        SELECT bucket, stage, sum(delta) AS delta FROM moves GROUP BY bucket, stage ORDER BY bucket"""),
        {**filters.params(), "end": end})).all()
    counts: dict[str, int] = {}
    series, applied = [], 0
    for period_start in wanted:
        while applied < len(rows) and rows[applied].bucket.date() <= period_start:
            counts[rows[applied].stage] = counts.get(rows[applied].stage, 0) + int(rows[applied].delta)
            applied += 1
        series.append({"period": period_start.isoformat(),
                       "customers": {stage: n for stage, n in sorted(counts.items()) if n}})
    return series


async def stage_counts(conn: AsyncConnection, filters: Filters) -> dict[str, int]:
    rows = await conn.execute(text(f"SELECT p.stage, count(*) AS n FROM profiles p WHERE {filters.profiles()} "
                                   "AND p.stage IS NOT NULL GROUP BY p.stage"), filters.params())
    return {row.stage: row.n for row in rows}


async def recent_transitions(conn: AsyncConnection, filters: Filters, *, limit: int) -> list[dict[str, Any]]:
    rows = await conn.execute(text(f"""
        SELECT p.customer_id, t.from_stage, t.to_stage, t.reason, t.event_time, t.historical
        FROM transitions t JOIN profiles p ON p.id = t.profile_id
        WHERE t.superseded_at IS NULL AND {filters.profiles()}
          AND (CAST(:start AS timestamptz) IS NULL OR t.event_time >= CAST(:start AS timestamptz))
          AND (CAST(:end AS timestamptz) IS NULL OR t.event_time < CAST(:end AS timestamptz))
        ORDER BY t.event_time DESC, t.seq DESC LIMIT :limit"""), {**filters.params(), "limit": limit})
    return [dict(row._mapping) for row in rows]
