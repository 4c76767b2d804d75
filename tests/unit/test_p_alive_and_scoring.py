"""The purchase model's judgement on the live state, and every buyer's scores, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from lifecycle_stage_engine.analytics.scoring import CustomerOrders, score
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES, DriftRules, RuleSet
from lifecycle_stage_engine.domain.stages import Stage
from lifecycle_stage_engine.domain.timeline import judge_p_alive, replay

from tests.unit.test_timeline import T0, orders_on

WATCHFUL = RuleSet(version="watchful", drift=DriftRules(at_risk_below_p_alive=0.3))


def buyer(*days: float):
    return replay(orders_on(*days), WATCHFUL)[0]


@pytest.mark.parametrize(("p_alive", "rules", "days_later", "expected"), [
    (0.1, WATCHFUL, 5, Stage.AT_RISK),  # below the threshold: at-risk now
    (0.5, WATCHFUL, 5, None),  # above it
    (0.1, DEFAULT_RULES, 5, None),  # the rule is off by default
    (0.1, WATCHFUL, 200, None),  # the days rule is due: the sweeper's move, with its own reason and moment
])
def test_judge_p_alive_moves_a_doubted_buyer_to_at_risk_and_nothing_else(p_alive, rules, days_later, expected):
    state = buyer(0, 30)
    at = T0 + timedelta(days=30 + days_later)
    after, moved = judge_p_alive(state, p_alive, at, rules)
    if expected is None:
        assert (after, moved) == (state, [])
        return
    assert [(m.from_stage, m.to_stage, m.reason, m.time) for m in moved] == [
        (Stage.RETENTION, Stage.AT_RISK, "low_p_alive", at)]
    assert (after.stage, after.stage_since, after.facts) == (Stage.AT_RISK, at, state.facts)
    assert judge_p_alive(after, p_alive, at + timedelta(days=1), rules) == (after, [])  # once


def at(day: float) -> datetime:
    return datetime(2025, 1, 1, 12, tzinfo=UTC) + timedelta(days=day)


def customer(name: str, *orders: tuple[float, str, str | None]) -> CustomerOrders:
    return CustomerOrders(profile_id=name, customer_id=f"c-{name}", orders=tuple(
        (at(day), Decimal(amount), None if cost is None else Decimal(cost)) for day, amount, cost in orders))


def test_without_a_repeat_buyer_there_are_scores_but_no_predictions_and_the_reason_is_given():
    scored, fit = score([customer("a", (0, "10", "4")), customer("b", (5, "20", None)), customer("c")],
                        as_of=at(30))
    assert set(scored) == {"a", "b"}  # a customer without an order is not scored
    assert scored["a"].margin == 6.0 and scored["b"].margin is None
    assert scored["a"].predicted_clv is None and scored["a"].total_clv == scored["a"].historic_clv == 10.0
    assert scored["a"].avg_days_between_orders is None and scored["a"].next_order_expected_at is None
    assert fit.bgnbd is None and "no repeat buyer" in fit.problems[0]


def test_every_buyer_gets_klaviyo_style_figures_from_the_first_repeat_buyers():
    shop = [customer(f"r{n}", *[(n + 20 * k, "30", "18") for k in range(1 + n % 4)]) for n in range(40)]
    scored, fit = score(shop, as_of=at(200))
    assert fit.repeat_buyers == 30 and fit.bgnbd["n"] == 40 and not fit.problems
    frequent = scored["r3"]  # four orders 20 days apart
    assert frequent.orders == 4 and frequent.avg_days_between_orders == 20.0
    assert frequent.next_order_expected_at == at(3 + 60 + 20)
    assert frequent.historic_clv == 120.0 and frequent.margin == 48.0
    low, high = frequent.predicted_clv_range
    assert low <= frequent.predicted_clv <= high
    assert frequent.total_clv == pytest.approx(frequent.historic_clv + frequent.predicted_clv, abs=0.01)
    assert 0 <= frequent.p_alive <= 1 and 0 <= frequent.churn_risk <= 1 and frequent.churn_band in ("low", "medium",
                                                                                                       "high")
    # The same rhythm, silent for longer (r3: 137 days, r39: 101): less likely alive, worth less.
    assert scored["r3"].recency_days > scored["r39"].recency_days
    assert scored["r3"].p_alive < scored["r39"].p_alive and scored["r3"].predicted_clv < scored["r39"].predicted_clv
