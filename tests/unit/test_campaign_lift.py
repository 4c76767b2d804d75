"""A campaign's lift: the statistics against textbook values and against scipy computations done another
way, the sample-ratio alarm, the minimum detectable effect, the 'not enough data' state. The proof by simulation
is in test_campaign_lift_simulation.py.

Every simulated figure is asserted within a 99.9% binomial interval around its nominal rate for the
number of runs, so the test is deterministic (a seeded numpy Generator) and not at the edge of what the
runs can show."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lifecycle_messaging.domain.holdout import held_out
from lifecycle_messaging.domain.lift import (
    Arm,
    Revenue,
    conversion_difference,
    lift,
    minimum_detectable_effect,
    newcombe_interval,
    pooled_z_p_value,
    sample_ratio,
    welch_difference,
    wilson_interval,
)
from scipy import stats

# --- conversion: Newcombe's interval and the pooled z-test -----------------------------------------


# Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10 (hybrid score, no continuity
# correction): (treatment converters, eligible, holdout converters, eligible) -> 95% limits.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0)),
    ((10, 10, 0, 10), (0.6075, 1.0)),
]


@pytest.mark.parametrize(("counts", "limits"), NEWCOMBE_TABLE_II)
def test_the_conversion_interval_is_newcombes_method_10(counts, limits):
    x1, n1, x0, n0 = counts
    interval = newcombe_interval(Arm(n1, x1), Arm(n0, x0))
    assert (round(interval.low, 4), round(interval.high, 4)) == limits


@pytest.mark.parametrize(("converters", "eligible"), [(0, 1), (0, 29), (5, 56), (30, 500), (412, 4500), (70, 70)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_the_wilson_interval_is_scipys(converters, eligible, confidence):
    reference = stats.binomtest(converters, eligible).proportion_ci(confidence_level=confidence, method="wilson")
    interval = wilson_interval(converters, eligible, confidence=confidence)
    assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("counts", [(56, 70, 48, 80), (412, 4500, 30, 500), (3, 900, 0, 100), (0, 50, 0, 50),
                                    (50, 50, 50, 50)])
def test_the_p_value_is_the_2x2_chi_square_without_continuity_correction(counts):
    x1, n1, x0, n0 = counts
    table = [[x1, n1 - x1], [x0, n0 - x0]]
    if x1 + x0 in (0, n1 + n0):  # nobody or everybody converted: no evidence of a difference
        expected = 1.0
    else:
        expected = stats.chi2_contingency(table, correction=False).pvalue
    assert pooled_z_p_value(Arm(n1, x1), Arm(n0, x0)) == pytest.approx(expected, rel=1e-9)


def test_the_difference_is_treatment_minus_holdout():
    difference = conversion_difference(Arm(4500, 450), Arm(500, 35))
    assert difference.estimate == pytest.approx(0.10 - 0.07)
    assert difference.interval.low < difference.estimate < difference.interval.high
    assert difference.significant == (difference.p_value < 0.05)


# --- revenue per eligible: Welch from sufficient statistics -----------------------------------------


def test_welch_from_sufficient_statistics_is_scipys_welch_test_on_the_values():
    rng = np.random.default_rng(7)
    treatment = np.where(rng.random(3000) < 0.08, rng.lognormal(3.6, 0.9, 3000), 0.0)
    holdout = np.where(rng.random(300) < 0.05, rng.lognormal(3.6, 0.9, 300), 0.0)
    difference = welch_difference(Revenue.of(treatment), Revenue.of(holdout))

    reference = stats.ttest_ind(treatment, holdout, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert difference.estimate == pytest.approx(treatment.mean() - holdout.mean(), rel=1e-12)
    assert difference.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert (difference.interval.low, difference.interval.high) == pytest.approx((interval.low, interval.high),
                                                                               rel=1e-9)


def test_revenue_statistics_are_the_sample_mean_and_variance():
    values = [0.0, 0.0, 120.5, 0.0, 35.25, -10.0]  # a refund larger than the window's purchases: negative
    revenue = Revenue.of(values)
    assert (revenue.n, revenue.mean) == (6, pytest.approx(np.mean(values)))
    assert revenue.variance == pytest.approx(np.var(values, ddof=1))
    assert Revenue(n=1, total=5.0, total_squares=25.0).variance == 0.0


# --- sample-ratio mismatch ---------------------------------------------------------------------------


@pytest.mark.parametrize(("holdout", "treatment", "share"), [(1000, 9000, 0.1), (930, 9070, 0.1), (480, 520, 0.5),
                                                              (2, 98, 0.05)])
def test_the_ratio_check_is_the_chi_square_goodness_of_fit(holdout, treatment, share):
    total = holdout + treatment
    expected = stats.chisquare([holdout, treatment], [total * share, total * (1 - share)]).pvalue
    z = (holdout - total * share) / math.sqrt(total * share * (1 - share))  # the same test as a z-test
    assert sample_ratio(holdout, treatment, share).p_value == pytest.approx(expected, rel=1e-9)
    assert sample_ratio(holdout, treatment, share).p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def assigned(campaign: str, people: int, share: float) -> list[bool]:
    return [held_out(campaign, f"cust_{i}", share) for i in range(people)]


def test_the_alarm_stays_quiet_on_correct_splits():
    """200 campaigns split by the real assignment: at p < 0.001 the alarm may fire by chance on about 0.2
    of them; more than the 99.9% binomial bound would mean the check or the split is wrong."""
    alarms = 0
    for number in range(200):
        groups = assigned(f"campaign-{number}", 1000, 0.1)
        alarms += sample_ratio(sum(groups), len(groups) - sum(groups), 0.1).mismatch
    assert alarms <= stats.binom.ppf(0.999, 200, 0.001)


@pytest.mark.parametrize("lost", [0.15, 0.25])
def test_the_alarm_fires_on_a_broken_split(lost):
    """A split broken the way real ones break: a share of the holdout's records lost (a logging path
    only the holdout takes), or the treatment's (a bot filter applied after the send)."""
    groups = assigned("winback-lapsed", 20_000, 0.1)
    holdout = sum(groups)
    treatment = len(groups) - holdout
    assert not sample_ratio(holdout, treatment, 0.1).mismatch
    assert sample_ratio(round(holdout * (1 - lost)), treatment, 0.1).mismatch
    assert sample_ratio(holdout, round(treatment * (1 - lost)), 0.1).mismatch
    assert lift(Arm(round(holdout * (1 - lost)), 100), Arm(treatment, 1000), 0.1).status == "sample_ratio_mismatch"


def test_share_0_or_1_has_one_empty_group_and_anyone_in_it_is_a_mismatch():
    assert not sample_ratio(0, 5000, 0.0).mismatch
    assert sample_ratio(1, 5000, 0.0).mismatch
    assert not sample_ratio(5000, 0, 1.0).mismatch
    assert sample_ratio(5000, 3, 1.0).mismatch
    assert sample_ratio(0, 0, 0.1).p_value == 1.0


# --- minimum detectable effect ------------------------------------------------------------------------


def test_the_minimum_detectable_effect_matches_the_textbook_sample_size():
    # Fleiss (no continuity correction): 10% vs 15%, alpha 0.05 two-sided, power 0.8 -> 686 per group.
    assert minimum_detectable_effect(0.10, 686, 686) == pytest.approx(0.05, abs=2e-4)
    assert minimum_detectable_effect(0.10, 685, 685) > 0.05 > minimum_detectable_effect(0.10, 687, 687)


def test_a_difference_of_the_minimum_detectable_effect_is_detected_with_80_percent_power():
    baseline, holdout, treatment = 0.05, 500, 4500
    effect = minimum_detectable_effect(baseline, holdout, treatment)
    assert effect is not None
    rng = np.random.default_rng(2026)
    runs = 2000
    detected = sum(pooled_z_p_value(Arm(treatment, int(x1)), Arm(holdout, int(x0))) < 0.05
                   for x1, x0 in zip(rng.binomial(treatment, baseline + effect, runs),
                                     rng.binomial(holdout, baseline, runs), strict=True))
    low, high = stats.binom.interval(0.999, runs, 0.80)
    assert low <= detected <= high


def test_the_minimum_detectable_effect_shrinks_as_the_audience_grows():
    effects = [minimum_detectable_effect(0.04, n // 10, n - n // 10) for n in (1000, 4000, 16000, 64000)]
    assert all(e is not None for e in effects)
    assert effects == sorted(effects, reverse=True)
    assert effects[-1] == pytest.approx(effects[-2] / 2, rel=0.1)  # about 1/sqrt(n)
    assert minimum_detectable_effect(0.5, 2, 3) is None  # no increase up to 100% is detectable
    assert minimum_detectable_effect(0.05, 0, 3000) is None


# --- not enough data ---------------------------------------------------------------------------------


def no_nan(result: object) -> bool:
    return "nan" not in repr(result).lower()


def test_a_small_audience_is_not_enough_data_and_shows_the_detectable_effect():
    result = lift(Arm(12, 1), Arm(95, 9), 0.1)
    assert result.status == "not_enough_data"
    assert result.conversion is None and result.revenue is None
    assert result.reasons == ("holdout has 12 eligible, fewer than 100", "treatment has 95 eligible, fewer than 100")
    assert result.minimum_detectable_effect is not None and no_nan(result)


def test_no_converters_is_not_enough_data():
    result = lift(Arm(500, 0), Arm(4500, 0), 0.1)
    assert result.status == "not_enough_data" and result.conversion is None
    assert "too few converters" in result.reasons[0]
    assert result.minimum_detectable_effect is not None and no_nan(result)


def test_share_0_says_there_is_no_holdout():
    result = lift(Arm(0, 0), Arm(5000, 300), 0.0)
    assert result.status == "not_enough_data"
    assert result.reasons[0] == "no holdout group: the holdout share is 0"
    assert result.minimum_detectable_effect is None and no_nan(result)


def test_revenue_without_variance_leaves_conversion_measured():
    result = lift(Arm(500, 60, Revenue(500, 0.0, 0.0)), Arm(4500, 500, Revenue(4500, 0.0, 0.0)), 0.1)
    assert result.status == "measured" and result.conversion is not None
    assert result.revenue is None and result.reasons == ("revenue is the same for everyone so far",)


def test_revenue_waits_for_enough_buyers_in_each_group():
    holdout = Arm(500, 49, Revenue(500, 49 * 40.0, 49 * 2000.0))
    treatment = Arm(4500, 500, Revenue(4500, 500 * 45.0, 500 * 2500.0))
    result = lift(holdout, treatment, 0.1)
    assert result.status == "measured" and result.conversion is not None and result.revenue is None
    assert result.reasons == ("a group has 49 buyers, fewer than 50 for a revenue interval",)
    assert lift(holdout, treatment, 0.1, min_buyers=40).revenue is not None


def test_inconsistent_groups_are_refused():
    with pytest.raises(ValueError, match="converters"):
        Arm(10, 11)
    with pytest.raises(ValueError, match="every eligible person"):
        Arm(10, 1, Revenue(9, 10.0, 100.0))
