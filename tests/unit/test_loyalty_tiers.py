"""Loyalty's tiers as a table: points over a rolling window, a refund taking its progress back, a downgrade
waiting out the grace period, the progress to the next tier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lifecycle_loyalty.domain.rules import TierRule
from lifecycle_loyalty.domain.tiers import multiplier_at, tier_progress
from pydantic import ValidationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULE = TierRule(window_days=365, grace_days=30, levels=[
    {"name": "member", "min_points": 0}, {"name": "silver", "min_points": 1000}, {"name": "gold", "min_points": 5000}])


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


@pytest.mark.parametrize(("earnings", "now", "expected"), [
    ([], day(0), ("member", "member", 0, "silver", 1000)),
    ([(day(0), 999)], day(1), ("member", "member", 999, "silver", 1)),
    ([(day(0), 600), (day(10), 400)], day(10), ("silver", "silver", 1000, "gold", 4000)),
    ([(day(0), 5000)], day(1), ("gold", "gold", 5000, None, None)),
    ([(day(0), 1200), (day(0), -400)], day(1), ("member", "member", 800, "silver", 200)),  # refunded: no silver
    # The window slides: the points of day 0 leave it on day 365; silver is kept for the 30 days of grace...
    ([(day(0), 1000), (day(200), 100)], day(380), ("silver", "member", 100, "silver", 900)),
    ([(day(0), 1000), (day(200), 100)], day(394), ("silver", "member", 100, "silver", 900)),
    # ...and lost after them.
    ([(day(0), 1000), (day(200), 100)], day(396), ("member", "member", 100, "silver", 900)),
    # Gold reached inside the grace period counts from then.
    ([(day(0), 5000), (day(300), 1000)], day(370), ("gold", "silver", 1000, "gold", 4000)),
])
def test_tiers_follow_the_rolling_window_with_grace(earnings, now, expected):
    progress = tier_progress(earnings, now=now, rule=RULE)
    assert (progress.tier, progress.qualifies_for, progress.points_in_window, progress.next_tier,
            progress.points_to_next) == expected


@pytest.mark.parametrize("levels", [
    [{"name": "silver", "min_points": 10}], [{"name": "a", "min_points": 0}, {"name": "b", "min_points": 0}],
    [{"name": "a", "min_points": 0}, {"name": "a", "min_points": 5}],
])
def test_tier_levels_must_start_at_zero_and_go_up(levels):
    with pytest.raises(ValidationError):
        TierRule(levels=levels)


def test_the_multiplier_is_the_one_of_the_tier_held_before_the_order():
    rule = TierRule(levels=[{"name": "member", "min_points": 0}, {"name": "silver", "min_points": 1000,
                                                                   "multiplier": "1.5"}])
    earned = [(day(0), 1000)]
    assert multiplier_at(earned, at=day(0), rule=rule) == 1  # the order that reaches silver earns at 1
    assert multiplier_at(earned, at=day(1), rule=rule) == Decimal("1.5")
    assert multiplier_at(earned, at=day(380), rule=rule) == Decimal("1.5")  # grace: out of the window on day 365
    assert multiplier_at(earned, at=day(400), rule=rule) == 1
