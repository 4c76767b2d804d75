"""Predictive CLV models: parameter recovery on simulated data, the published CDNOW figures, and the
properties the CLV and churn figures must have. Pure: the only I/O is reading tests/data."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from lifecycle_stage_engine.analytics.clv import (
    BgNbdFit,
    ChurnBand,
    ChurnBands,
    FitError,
    GammaGammaFit,
    check_independence,
    churn_band,
    churn_risk,
    clv,
    expected_purchases,
    expected_purchases_new,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    probability_alive,
    rfm_summary,
)

from tests.support.shops import simulate_bgnbd, simulate_gamma_gamma

DATA = Path(__file__).parent.parent / "data"
CALIBRATION_END = date(1997, 9, 30)


BGNBD_TRUTH = (0.5, 6.0, 1.2, 3.0)  # r, α, a, b; weeks
GG_TRUTH = (6.0, 4.0, 15.0)  # p, q, γ


@pytest.fixture(scope="module")
def cdnow_rows() -> list[tuple[int, date, float]]:
    rows = []
    for line in (DATA / "cdnow_sample.txt").read_text().splitlines():
        _, customer, day, _, amount = line.split()
        rows.append((int(customer), datetime.strptime(day, "%Y%m%d").date(), float(amount)))
    return rows


@pytest.fixture(scope="module")
def cdnow(cdnow_rows):
    """frequency, recency, age, monetary of the 2,357 customers, built with our own summary."""
    return rfm_summary(cdnow_rows, calibration_end=CALIBRATION_END, unit="W").columns()


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow) -> BgNbdFit:
    x, t_x, age, _ = cdnow
    return fit_bgnbd(x, t_x, age, unit="W")


@pytest.fixture(scope="module")
def cdnow_gg(cdnow) -> GammaGammaFit:
    x, _, _, m = cdnow
    return fit_gamma_gamma(x, m)


# --- parameter recovery ---------------------------------------------------------------------


@pytest.mark.parametrize(("n", "relative_tolerance"), [(5_000, None), (20_000, 0.15)])
def test_bgnbd_recovers_simulated_parameters(n, relative_tolerance):
    """Every estimate within 3 of its standard errors of the truth; with 20,000 customers (standard
    errors ≤ 5%: a and b are the hard ones, ~8–10% at 5,000) also within 15%."""
    rng = np.random.default_rng(20050101)
    x, t_x, age = simulate_bgnbd(n, *BGNBD_TRUTH, rng.uniform(52, 104, n), rng)
    fit = fit_bgnbd(x, t_x, age, unit="W")
    estimates, truth, errors = np.array(fit.params), np.array(BGNBD_TRUTH), np.array(fit.standard_errors)
    assert fit.n == n
    assert np.all(np.abs(estimates - truth) < 3 * errors), (estimates, errors)
    if relative_tolerance:
        assert np.all(np.abs(estimates / truth - 1) < relative_tolerance), estimates


@pytest.mark.parametrize(("n", "relative_tolerance"), [(5_000, None), (50_000, 0.15)])
def test_gamma_gamma_recovers_simulated_parameters(n, relative_tolerance):
    """p and γ are strongly correlated (standard errors ~13–16% at 5,000 repeat buyers, ~4–5% at
    50,000), q is sharp: within 3 standard errors always, within 15% at 50,000."""
    rng = np.random.default_rng(2013)
    x, m = simulate_gamma_gamma(n, *GG_TRUTH, rng)
    fit = fit_gamma_gamma(x, m)
    estimates, truth, errors = np.array(fit.params), np.array(GG_TRUTH), np.array(fit.standard_errors)
    assert fit.n == n
    assert np.all(np.abs(estimates - truth) < 3 * errors), (estimates, errors)
    if relative_tolerance:
        assert np.all(np.abs(estimates / truth - 1) < relative_tolerance), estimates


# --- the published CDNOW figures ------------------------------------------------------------


def test_our_summary_matches_hardies_cdnow_summary(cdnow_rows, cdnow):
    summary = rfm_summary(cdnow_rows, calibration_end=CALIBRATION_END, unit="W")
    with (DATA / "cdnow_summary.csv").open() as f:
        published = {int(row["ID"]): row for row in csv.DictReader(f)}
    assert len(summary.customers) == len(published) == 2357
    for c in summary.customers:
        row = published[c.customer]
        assert c.frequency == int(row["x"])
        assert (c.recency, c.age, c.monetary) == pytest.approx(  # the file is rounded to 2 decimals
            (float(row["t_x"]), float(row["T"]), float(row["zbar"])), abs=0.0051)
    x, _, _, _ = cdnow
    assert (x > 0).sum() == 946


def test_bgnbd_reproduces_fader_hardie_lee_cdnow_estimates(cdnow_bgnbd):
    fit = cdnow_bgnbd
    assert [round(v, 3) for v in fit.params] == [0.243, 4.414, 0.793, 2.426]
    assert round(fit.log_likelihood, 1) == -9582.4
    assert fit.n == 2357 and fit.unit == "W"


def test_gamma_gamma_reproduces_fader_hardie_cdnow_estimates(cdnow_gg, cdnow):
    fit = cdnow_gg
    assert (round(fit.p, 2), round(fit.q, 2), round(fit.gamma, 2)) == (6.25, 3.74, 15.44)
    assert fit.n == 946
    x, _, _, m = cdnow
    check = check_independence(x, m)
    assert not check.violated and check.correlation == pytest.approx(0.11, abs=0.01)


def test_conditional_expectation_matches_the_papers_worked_example(cdnow_bgnbd):
    """x = 2, t_x = 30.43, T = 38.86: 1.226 purchases expected in the next 39 weeks (Hardie's sheet)."""
    assert expected_purchases(cdnow_bgnbd, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)
    published = BgNbdFit(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, n=0, unit="W",
                         standard_errors=(0.0,) * 4)
    assert expected_purchases(published, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)


def test_unconditional_expectation_matches_hardies_sheet(cdnow_bgnbd):
    weeks = [0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0]
    expected = [0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576]
    assert expected_purchases_new(cdnow_bgnbd, weeks) == pytest.approx(expected, abs=1e-3)


# --- P(alive), churn risk, spend, CLV -------------------------------------------------------


def test_probability_alive(cdnow_bgnbd):
    fit = cdnow_bgnbd
    assert probability_alive(fit, 0, 0, 38.86) == 1.0  # no repeat purchase: cannot have dropped out
    recent, lapsed = probability_alive(fit, [5, 5], [38.0, 5.0], [38.86, 38.86])
    assert 0 < lapsed < recent < 1
    # the odds form by hand for the worked example's customer
    odds = fit.a / (fit.b + 1) * ((fit.alpha + 38.86) / (fit.alpha + 30.43)) ** (fit.r + 2)
    assert probability_alive(fit, 2, 30.43, 38.86) == pytest.approx(1 / (1 + odds))


def test_churn_risk_follows_its_formula_and_stays_in_range(cdnow_bgnbd, cdnow):
    fit = cdnow_bgnbd
    x, t_x, age, _ = cdnow
    risk = churn_risk(fit, x, t_x, age)
    assert np.all((risk >= 0) & (risk <= 1))
    tau = 90 / 7
    alive = probability_alive(fit, x, t_x, age)
    by_hand = alive * ((fit.alpha + age) / (fit.alpha + age + tau)) ** (fit.r + x) + (1 - alive)
    assert risk == pytest.approx(by_hand)
    # consistent with the expectation: P(no purchase) ≥ 1 − E[purchases] (Markov's inequality)
    assert np.all(risk >= 1 - expected_purchases(fit, tau, x, t_x, age) - 1e-12)
    assert churn_risk(fit, 2, 30.43, 38.86, window_days=90) < churn_risk(fit, 2, 30.43, 38.86, window_days=30)


@pytest.mark.parametrize(("risk", "band"), [
    (0.0, ChurnBand.LOW), (0.49, ChurnBand.LOW), (0.5, ChurnBand.MEDIUM), (0.79, ChurnBand.MEDIUM),
    (0.8, ChurnBand.HIGH), (1.0, ChurnBand.HIGH),
])
def test_churn_bands(risk, band):
    assert churn_band(risk) is band


def test_churn_bands_are_configurable():
    assert churn_band(0.35, ChurnBands(medium_from=0.3, high_from=0.6)) is ChurnBand.MEDIUM


def test_expected_spend_shrinks_towards_the_population_mean(cdnow_gg):
    fit = cdnow_gg
    population = fit.p * fit.gamma / (fit.q - 1)
    assert expected_spend(fit, 0, 0.0) == pytest.approx(population)
    low, high, many_low = expected_spend(fit, [1, 1, 20], [10.0, 100.0, 10.0])
    assert 10 < low < population < high < 100
    assert 10 < many_low < low  # more purchases: more weight on the customer's own mean
    weight = fit.p * 20 / (fit.p * 20 + fit.q - 1)
    assert many_low == pytest.approx(weight * 10 + (1 - weight) * population)


def test_clv_grows_with_the_horizon_and_shrinks_with_the_discount_rate(cdnow_bgnbd, cdnow_gg, cdnow):
    x, t_x, age, m = cdnow
    values = [clv(cdnow_bgnbd, cdnow_gg, x, t_x, age, m, horizon_days=h) for h in (30, 100, 365, 730, 1825)]
    assert all(np.all(later > earlier) for earlier, later in zip(values, values[1:], strict=False))
    plain = clv(cdnow_bgnbd, cdnow_gg, x, t_x, age, m, annual_discount_rate=0.0)
    assert np.all(clv(cdnow_bgnbd, cdnow_gg, x, t_x, age, m, annual_discount_rate=0.1) < plain)
    # undiscounted, CLV is expected spend × expected purchases over the horizon
    undiscounted = expected_spend(cdnow_gg, x, m) * expected_purchases(cdnow_bgnbd, 365 / 7, x, t_x, age)
    assert plain == pytest.approx(undiscounted)


def test_clv_discounts_each_month_from_its_end(cdnow_bgnbd, cdnow_gg):
    one_month = 365.25 / 12
    value = clv(cdnow_bgnbd, cdnow_gg, 2, 30.43, 38.86, 22.35, horizon_days=one_month, annual_discount_rate=0.12)
    purchases = expected_purchases(cdnow_bgnbd, one_month / 7, 2, 30.43, 38.86)
    assert value == pytest.approx(expected_spend(cdnow_gg, 2, 22.35) * purchases / 1.12 ** (1 / 12))


# --- the independence check -----------------------------------------------------------------


def test_independence_check_fires_on_correlated_data_only():
    rng = np.random.default_rng(7)
    correlated = check_independence(*simulate_gamma_gamma(2_000, *GG_TRUTH, rng, spend_follows_frequency=True))
    independent = check_independence(*simulate_gamma_gamma(2_000, *GG_TRUTH, rng))
    assert correlated.violated and correlated.correlation > 0.3 and correlated.n == 2_000
    assert not independent.violated and abs(independent.correlation) < 0.1


def test_independence_check_ignores_customers_without_repeat_purchases():
    check = check_independence([0, 0, 1, 2, 3], [0.0, 0.0, 10.0, 10.0, 10.0])
    assert check.n == 3 and not check.violated and np.isnan(check.correlation)


# --- the summary from transactions ----------------------------------------------------------


def test_summary_merges_same_day_orders_and_ignores_orders_after_the_end():
    t = [
        ("ann", datetime(2026, 1, 1, 9, tzinfo=UTC), Decimal("10")),
        ("ann", datetime(2026, 1, 1, 18, tzinfo=UTC), Decimal("5")),  # same day: one purchase of 15
        ("ann", date(2026, 1, 8), 20),
        ("ann", date(2026, 1, 15), 40),
        ("ann", date(2026, 2, 1), 999),  # after the calibration end
        ("bob", date(2026, 1, 20), 7),
    ]
    days = rfm_summary(t, calibration_end=date(2026, 1, 29), unit="D")
    ann, bob = days.customers
    assert (ann.customer, ann.frequency, ann.recency, ann.age, ann.monetary) == ("ann", 2, 14.0, 28.0, 30.0)
    assert (bob.frequency, bob.recency, bob.age, bob.monetary) == (0, 0.0, 9.0, 0.0)
    weeks = rfm_summary(t, calibration_end=date(2026, 1, 29), unit="W")
    assert (weeks.customers[0].recency, weeks.customers[0].age) == (2.0, 4.0)
    x, t_x, age, m = weeks.columns()
    assert list(x) == [2, 0] and list(age) == [4.0, 9 / 7]


def test_nothing_to_fit_is_an_error():
    with pytest.raises(FitError):
        fit_bgnbd([], [], [], unit="D")
    with pytest.raises(FitError):
        fit_gamma_gamma([0, 0], [0.0, 0.0])


def test_fitted_at_is_carried_not_invented(cdnow):
    x, t_x, age, m = cdnow
    at = datetime(2026, 5, 1, tzinfo=UTC)
    assert fit_bgnbd(x, t_x, age, unit="W", fitted_at=at).fitted_at == at
    assert fit_gamma_gamma(x, m).fitted_at is None
