"""Tiers as a pure function of what the customer earned and when (no I/O, no clock: `now` is a parameter).

Progress is the points earned over the rule's rolling window: each order's net points (earned, less what
its refunds took back) count at the order's completion; referrals, reviews and bonuses when they happened.
The tier is the highest one the customer qualified for at any moment of the last `grace_days` (a downgrade
waits out the grace period); since progress only rises when something is earned, those moments are the
start of the grace period and every earning inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from lifecycle_loyalty.domain.rules import TierRule

Earning = tuple[datetime, int]  # when, points (negative: taken back)


@dataclass(frozen=True)
class TierProgress:
    tier: str  # with the grace period
    qualifies_for: str  # by the window's points now
    points_in_window: int
    next_tier: str | None
    points_to_next: int | None


def window_points(earnings: list[Earning], at: datetime, window: timedelta) -> int:
    return sum(points for when, points in earnings if at - window < when <= at)


def rank_for(points: int, rule: TierRule) -> int:
    return max(i for i, level in enumerate(rule.levels) if points >= level.min_points)


def tier_progress(earnings: list[Earning], *, now: datetime, rule: TierRule) -> TierProgress:
    window, grace = timedelta(days=rule.window_days), timedelta(days=rule.grace_days)
    points = window_points(earnings, now, window)
    qualifies = rank_for(points, rule)
    moments = [now - grace, *(when for when, _ in earnings if now - grace < when <= now)]
    held = max(qualifies, *(rank_for(window_points(earnings, moment, window), rule) for moment in moments))
    following = rule.levels[qualifies + 1] if qualifies + 1 < len(rule.levels) else None
    return TierProgress(tier=rule.levels[held].name, qualifies_for=rule.levels[qualifies].name,
                        points_in_window=points, next_tier=following.name if following else None,
                        points_to_next=following.min_points - points if following else None)


def multiplier_at(earnings: list[Earning], *, at: datetime, rule: TierRule) -> Decimal:
    """The earn multiplier of the tier held at `at` (what was earned strictly before it counts)."""
    before = [(when, points) for when, points in earnings if when < at]
    tier = tier_progress(before, now=at, rule=rule).tier
    return next(level.multiplier for level in rule.levels if level.name == tier)
