"""Campaign lift's SQL: per campaign and group, the eligible people, those sent, those who ordered within the
attribution window after the (would-be) send and their revenue net of refunds; and per campaign the messages
by outcome. Keyed by the campaign id the holdout assignments and messages record (`messages.campaign`).

- Eligible: every (campaign, person) with a recorded holdout assignment (`gateway.hold_out`), as assigned.
  A person merged away since (an alias) is left out: the survivor carries the assignment (`gateway.HAND_OVER_SQL`).
- Exposure: the person's first sent message of the campaign (the service clock's `sent_clock_at`), else the
  assignment's time - when a held-out person was suppressed `holdout`, i.e. would have been sent, and when a
  treated person's message, held by quiet hours, capped or bounced, first reached the gateway.
- Orders: those of the person or of any key merged into them (through `aliases`), at or after the exposure
  and before exposure + window, and not after `now` (the service's clock, never SQL `now()`); revenue of
  each order net of its refunds (a refund without an amount refunds the whole order), never below zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Interval, Text, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class GroupFigures:
    campaign: str
    group: str
    eligible: int
    sent: int
    converters: int
    revenue: float
    revenue_squares: float


_LIFT = text("""
WITH exposure AS (
    SELECT h.campaign, h."group", h.person, s.first_sent IS NOT NULL AS sent,
           COALESCE(s.first_sent, h.assigned_at) AS exposed_at
    FROM holdout_assignments h
    LEFT JOIN LATERAL (
        SELECT min(m.sent_clock_at) AS first_sent FROM messages m
        WHERE m.campaign = h.campaign AND m.customer_id = h.person AND m.status = 'sent'
          AND m.sent_clock_at <= :now
    ) s ON true
    WHERE (CAST(:campaign AS text) IS NULL OR h.campaign = :campaign) AND h.assigned_at <= :now
      AND NOT EXISTS (SELECT 1 FROM aliases a WHERE a.absorbed_id = h.person)
), net_orders AS (
    SELECT COALESCE(a.survivor_id, o.customer_id) AS person, o.ordered_at,
           GREATEST(0, o.revenue - CASE WHEN bool_or(r.event_id IS NOT NULL AND r.amount IS NULL) THEN o.revenue
                                        ELSE COALESCE(sum(r.amount), 0) END) AS net
    FROM orders o
    LEFT JOIN aliases a ON a.absorbed_id = o.customer_id
    LEFT JOIN order_refunds r ON r.order_id = o.order_id AND r.refunded_at <= :now
    WHERE o.ordered_at <= :now
    GROUP BY o.order_id, a.survivor_id, o.customer_id, o.ordered_at, o.revenue
), per_person AS (
    SELECT e.campaign, e."group", e.person, e.sent, count(n.person) AS orders, COALESCE(sum(n.net), 0) AS revenue
    FROM exposure e
    LEFT JOIN net_orders n ON n.person = e.person AND n.ordered_at >= e.exposed_at
                          AND n.ordered_at < e.exposed_at + :window
    GROUP BY e.campaign, e."group", e.person, e.sent
)
SELECT campaign, "group", count(*) AS eligible, count(*) FILTER (WHERE sent) AS sent,
       count(*) FILTER (WHERE orders > 0) AS converters,
       COALESCE(sum(revenue), 0) AS revenue, COALESCE(sum(revenue * revenue), 0) AS revenue_squares
FROM per_person GROUP BY campaign, "group" ORDER BY campaign, "group"
""").bindparams(bindparam("campaign", type_=Text), bindparam("window", type_=Interval))


async def group_figures(conn: AsyncConnection, *, now: datetime, window: timedelta,
                        campaign: str | None = None) -> list[GroupFigures]:
    """Per campaign (or only `campaign`) and group, as of `now`."""
    rows = await conn.execute(_LIFT, {"now": now, "window": window, "campaign": campaign})
    return [GroupFigures(row.campaign, row.group, row.eligible, row.sent, row.converters, float(row.revenue),
                         float(row.revenue_squares)) for row in rows]


_OUTCOMES = text("""
SELECT campaign,
       CASE WHEN status = 'queued' AND held_until > :now THEN 'held' ELSE status END AS outcome,
       suppressed_reason, count(*) AS n
FROM messages
WHERE (CAST(:campaign AS text) IS NULL OR campaign = :campaign)
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
""").bindparams(bindparam("campaign", type_=Text))


async def outcomes(conn: AsyncConnection, *, now: datetime,
                   campaign: str | None = None) -> dict[str, dict[tuple[str, str | None], int]]:
    """Per campaign: messages by (outcome, suppression reason). The outcome is the message's status, `held`
    for a queued message quiet hours or the caps hold past `now`."""
    counts: dict[str, dict[tuple[str, str | None], int]] = {}
    for row in await conn.execute(_OUTCOMES, {"now": now, "campaign": campaign}):
        counts.setdefault(row.campaign, {})[(row.outcome, row.suppressed_reason)] = row.n
    return counts
