"""The purchase model's judgement on the live state, and every buyer's scores, without I/O."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from lifecycle_stage_engine.analytics import clv
from lifecycle_stage_engine.analytics.scoring import CustomerOrders, score
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES, DriftRules, RuleSet
from lifecycle_stage_engine.domain.stages import Stage, Touch
from lifecycle_stage_engine.domain.timeline import judge_p_alive, replay, step

from tests.support.shops import bgnbd_shop
from tests.support.timeline_touches import T0, orders_on

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
    assert (after.stage, after.stage_since, after.facts) == (Stage.AT_RISK, at, replace(state.facts, doubted_at=at))
    assert judge_p_alive(after, p_alive, at + timedelta(days=1), rules) == (after, [])  # once
    # A visit, even one made before the judgement and delivered after it, does not undo it...
    for visit_at in (at - timedelta(hours=1), at + timedelta(hours=1)):
        visited, moves = step(after, Touch(event_id=f"v-{visit_at}", name="page_viewed", time=visit_at), rules)
        assert (visited.stage, moves) == (Stage.AT_RISK, [])
    # ...an order does: a reactivation, and the doubt is gone.
    ordered, moves = step(after, Touch(event_id="back", name="order_completed", time=at + timedelta(days=2),
                                       properties={"order_id": "back", "revenue": 5}), rules)
    assert [(m.from_stage, m.to_stage, m.reason) for m in moves] == [(Stage.AT_RISK, Stage.RETENTION, "reactivated")]
    assert ordered.facts.doubted_at is None


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
    # A shop simulated from the model's own assumptions (well determined), and two buyers of the same rhythm.
    shop = bgnbd_shop(400, as_of=at(200), seed=11)
    shop += [customer("r3", *[(3 + 20 * k, str(35 + k), str((35 + k) * 0.6)) for k in range(4)]),
             customer("r39", *[(39 + 20 * k, str(35 + k), None) for k in range(4)])]
    scored, fit = score(shop, as_of=at(200))
    assert fit.bgnbd["n"] == len(shop) and fit.repeat_buyers > 100 and not fit.problems, fit.problems
    frequent = scored["r3"]  # four orders 20 days apart
    assert frequent.orders == 4 and frequent.avg_days_between_orders == 20.0
    assert frequent.next_order_expected_at == at(3 + 60 + 20)
    assert frequent.historic_clv == 35 + 36 + 37 + 38 and frequent.margin == pytest.approx(0.4 * 146)
    low, high = frequent.predicted_clv_range
    assert low <= frequent.predicted_clv <= high
    assert frequent.total_clv == pytest.approx(frequent.historic_clv + frequent.predicted_clv, abs=0.01)
    assert 0 <= frequent.p_alive <= 1 and 0 <= frequent.churn_risk <= 1 and frequent.churn_band in ("low", "medium",
                                                                                                       "high")
    # The same rhythm, silent for longer (r3: 137 days, r39: 101): less likely alive, worth less.
    assert scored["r3"].recency_days > scored["r39"].recency_days
    assert scored["r3"].p_alive < scored["r39"].p_alive and scored["r3"].predicted_clv < scored["r39"].predicted_clv


def test_a_well_determined_fit_has_every_standard_error_and_a_flat_one_predicts_nothing_and_says_why():
    """The promise about flat likelihoods, on data built to have each property with margin: hundreds of
    buyers simulated from BG/NBD determine every parameter; forty buyers on clockwork (every 20 days, to
    the day) leave the likelihood flat, so the fit withholds its predictions and names the loose parameters."""
    scored, fit = score(bgnbd_shop(600, as_of=at(400), seed=3), as_of=at(400))
    assert fit.bgnbd is not None and not fit.problems, fit.problems
    for name, value in fit.bgnbd["params"].items():
        assert 0 < fit.bgnbd["standard_errors"][name] < 0.5 * value, fit.bgnbd
    assert all(s.p_alive is not None and s.predicted_clv is not None for s in scored.values())
    clockwork = [customer(f"r{n}", *[(n + 20 * k, "30", None) for k in range(int((300 - n) / 20) + 1)])
                 for n in range(40)]
    scored, fit = score(clockwork, as_of=at(300))
    assert fit.bgnbd is None and any(p.startswith("BG/NBD: ") and ("do not determine" in p or "ran off" in p)
                                     for p in fit.problems), fit.problems
    assert all(s.p_alive is None and s.predicted_clv is None and s.historic_clv > 0 for s in scored.values())


def finite(value) -> bool:
    if isinstance(value, tuple):
        return all(finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def test_a_subscription_shop_gets_finite_figures_or_none_never_nan():
    """Everyone every 30 ± 3 days at one price: BG/NBD's r runs off and hyp2f1 overflows. Stored figures
    must stay finite (JSON has no NaN; total_clv is NOT NULL)."""
    rng = random.Random(1)
    shop = []
    for n in range(10):
        day, orders = rng.uniform(0, 300), []
        while day < 400:
            orders.append((day, "29.90", None))
            day += 30 + rng.uniform(-3, 3)
        shop.append(customer(f"s{n}", *orders))
    scored, fit = score(shop, as_of=at(400))
    assert all(finite(v) for s in scored.values() for v in s.as_json().values())
    assert all(s.total_clv >= s.historic_clv > 0 for s in scored.values())
    assert fit.problems  # what was left out is said


def test_a_small_samples_fit_predicts_nothing_and_a_fit_at_the_bounds_predicts_nothing():
    # Three buyers: the maximum-likelihood P(alive) of a buyer who ordered an hour ago would be about 2%;
    # three buyers do not determine four parameters, so nothing is predicted and the fit says why.
    shop = [customer("a", (0, "10", None), (30, "20", None)), customer("b", (3, "30", None), (29, "5", None)),
            customer("c", (1, "5", None))]
    scored, fit = score(shop, as_of=at(30) + timedelta(hours=1))
    assert scored["a"].p_alive is None and not fit.moves_stages and fit.bgnbd is None
    assert any(p.startswith("BG/NBD: ") for p in fit.problems)
    # All spends alike: Gamma-Gamma's p and q run off towards infinity, so no spend prediction, and it says so.
    alike = [replace(c, orders=tuple((t, Decimal(30), None) for t, _, _ in c.orders))
             for c in bgnbd_shop(300, as_of=at(200), seed=5)]
    scored, fit = score(alike, as_of=at(200))
    assert fit.gamma_gamma is None and any("Gamma-Gamma: a parameter ran off" in p for p in fit.problems)
    assert all(s.predicted_clv is None and s.p_alive is not None for s in scored.values())
    assert fit.moves_stages  # BG/NBD is fine: well over 10 repeat buyers


def test_the_churn_band_is_that_of_the_churn_risk_shown(monkeypatch):
    shop = bgnbd_shop(200, as_of=at(200), seed=2)
    monkeypatch.setattr(clv, "churn_risk", lambda *args, **kwargs: np.full(200, 0.79996))
    scored, _ = score(shop, as_of=at(200))
    assert {(s.churn_risk, s.churn_band) for s in scored.values()} == {(0.8, "high")}
