"""What a campaign's holdout shows: the campaign's effect on ordering and on revenue, with its
uncertainty. Pure (numbers in, numbers out; no clock, no I/O).

The comparison is as assigned (intention to treat): every person who reached the holdout step of the
gateway is in exactly one group (`domain.holdout`), and both groups are counted whole - `eligible` -
whether or not a treated person's message was later held by quiet hours, capped or bounced. Comparing
"sent" with "held out" would be biased: what stops a send happens to one group only.

Per group the caller gives: eligible, converters (eligible people with at least one order within the
attribution window after the send or would-be send) and, optionally, each eligible person's revenue in
that window net of refunds (zero for those who did not buy), as values or as sufficient statistics
(n, sum, sum of squares - what one SQL aggregate returns).

Methods, and why:

- Conversion difference (treatment - holdout): Newcombe's hybrid score interval (Newcombe 1998, method
  10), built from the two groups' Wilson score intervals (`wilson_interval`, equal to scipy's
  `binomtest(...).proportion_ci("wilson")` without the exact test scipy runs first).
  The textbook Wald interval undercovers at the low conversion rates and small holdouts campaigns have
  (a 10% holdout of a few hundred people with a few percent converting) and is degenerate with zero
  converters; Newcombe's stays near its nominal level there and is never empty or NaN. Its p-value is
  the pooled two-proportion z-test (the score test; the same as a 2x2 chi-square without continuity
  correction), whose size is close to alpha for these counts. The interval and the test are different
  constructions and may disagree exactly at the boundary (in 0.2% of simulated campaigns);
  `significant` is the test's verdict.
- Revenue per eligible person: Welch's t (unequal variances, Welch-Satterthwaite degrees of freedom;
  t quantile and p-value from `scipy.stats.t`; equal to `scipy.stats.ttest_ind(equal_var=False)` on
  the values). Revenue is zero for most people and skewed for the rest, but the mean of thousands of
  them is close to normal, and the two groups are of very different sizes (10% / 90%), where a
  pooled-variance t is wrong whenever the variances differ. Not while a group has fewer than
  `min_buyers` (default 50) converters: with few buyers the skew shows - the holdout's mean is more
  often below its expectation than above, and the interval misses the true difference on one side
  (simulated, order values lognormal with sigma 0.8: about 87% coverage with under 20 holdout buyers,
  92% with 20-40, 94-95% with 40-80, 95-97% above 80).
- Sample-ratio mismatch: a chi-square goodness-of-fit test (one degree of freedom, `scipy.stats.chi2`;
  equal to `scipy.stats.chisquare`) of the observed group sizes against the configured share; the alarm
  is p < 0.001 (a strict threshold: it is checked every time the dashboard is looked at, and a really
  broken split - lost logging, a bot filter applied to one group - soon goes far below it). With the
  alarm on, the lift is shown but not to be trusted.
- Minimum detectable effect: the smallest absolute increase in conversion over `baseline` that the
  pooled z-test at this alpha (two-sided) would detect with this power at the current group sizes
  (normal approximation, the variance under the null pooled and under the alternative per group - the
  formula of Fleiss, Statistical Methods for Rates and Proportions, solved for the difference with
  `scipy.optimize.brentq`). Shown always, and what the dashboard leads with before there is enough data.
- Not enough data, instead of NaN: no holdout or no treatment group (a share of 0 or 1), a group with
  fewer than `min_eligible` people (default 100), or a 2x2 table of converters / non-converters with an
  expected cell count below 5 (Cochran's rule for the chi-square/z test). Then the conversion and revenue
  differences are None and `reasons` says why; counts, conversions, the ratio check and the minimum
  detectable effect remain.

Proven by simulation (`tests/unit/test_campaign_lift.py`): shops with a known true effect on ordering;
the intervals cover it in about 95% of runs and a campaign with no effect is significant about 5% of the
time. Variance reduction with a pre-period covariate (CUPED) is in `cuped.py`. Not done: sequential
testing - the p-value is valid for one look; looking every day and stopping at the first p < 0.05
inflates the false positive rate, which is why the dashboard shows the minimum detectable effect to
wait for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.80
SRM_ALPHA = 0.001
MIN_ELIGIBLE = 100  # per group
MIN_EXPECTED_CELL = 5.0  # Cochran
MIN_BUYERS = 50  # per group, for the revenue interval (see the module's docstring)

Status = Literal["measured", "not_enough_data", "sample_ratio_mismatch"]


@dataclass(frozen=True)
class Revenue:
    """Per-person revenue net of refunds over a group, as sufficient statistics."""

    n: int
    total: float
    total_squares: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Revenue:
        """The statistics of per-person values (one per eligible person, zero for non-buyers)."""
        listed = [float(v) for v in values]
        return cls(len(listed), math.fsum(listed), math.fsum(v * v for v in listed))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance (n - 1 in the denominator); 0 for fewer than two people."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.total_squares - self.total * self.total / self.n) / (self.n - 1))


@dataclass(frozen=True)
class Arm:
    """One group of a campaign: eligible people, how many converted, and their revenue (optional)."""

    eligible: int
    converters: int
    revenue: Revenue | None = None

    def __post_init__(self) -> None:
        if self.eligible < 0 or not 0 <= self.converters <= self.eligible:
            raise ValueError(f"need 0 <= converters <= eligible, got {self.converters} of {self.eligible}")
        if self.revenue is not None and self.revenue.n != self.eligible:
            raise ValueError(f"revenue must cover every eligible person: n={self.revenue.n}, "
                             f"eligible={self.eligible}")

    @property
    def conversion(self) -> float | None:
        return self.converters / self.eligible if self.eligible else None


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Difference:
    """Treatment minus holdout, its interval at the confidence level, and the test of no difference."""

    estimate: float
    interval: Interval
    p_value: float
    significant: bool


@dataclass(frozen=True)
class SampleRatio:
    """The observed split against the configured one (chi-square goodness of fit)."""

    expected_share: float
    observed_share: float | None
    p_value: float
    mismatch: bool


@dataclass(frozen=True)
class Lift:
    """A campaign's lift as far as the data goes; `reasons` says why a difference is None."""

    holdout: Arm
    treatment: Arm
    status: Status
    reasons: tuple[str, ...]
    conversion: Difference | None
    revenue: Difference | None
    sample_ratio: SampleRatio
    minimum_detectable_effect: float | None
    confidence: float


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return alpha


def wilson_interval(converters: int, eligible: int, *, confidence: float = 1 - ALPHA) -> Interval:
    """Wilson's score interval for one proportion (the same as scipy's
    `binomtest(...).proportion_ci(method="wilson")`, which also runs an exact test this does not need)."""
    if eligible <= 0:
        raise ValueError("a proportion needs at least one eligible person")
    _check_alpha(1 - confidence)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = converters / eligible
    centre = (p + z * z / (2 * eligible)) / (1 + z * z / eligible)
    half = z / (1 + z * z / eligible) * math.sqrt(p * (1 - p) / eligible + z * z / (4 * eligible * eligible))
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(treatment: Arm, holdout: Arm, *, confidence: float = 1 - ALPHA) -> Interval:
    """Newcombe's hybrid score interval (method 10) for treatment minus holdout conversion."""
    if not treatment.eligible or not holdout.eligible:
        raise ValueError("both groups need at least one eligible person")
    _check_alpha(1 - confidence)
    p1, p0 = treatment.converters / treatment.eligible, holdout.converters / holdout.eligible
    w1 = wilson_interval(treatment.converters, treatment.eligible, confidence=confidence)
    w0 = wilson_interval(holdout.converters, holdout.eligible, confidence=confidence)
    difference = p1 - p0
    return Interval(max(-1.0, difference - math.hypot(p1 - w1.low, w0.high - p0)),
                    min(1.0, difference + math.hypot(w1.high - p1, p0 - w0.low)))


def pooled_z_p_value(treatment: Arm, holdout: Arm) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when nobody or everybody converted)."""
    n1, n0 = treatment.eligible, holdout.eligible
    if not n1 or not n0:
        raise ValueError("both groups need at least one eligible person")
    pooled = (treatment.converters + holdout.converters) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    if se == 0.0:
        return 1.0
    z = (treatment.converters / n1 - holdout.converters / n0) / se
    return float(2 * stats.norm.sf(abs(z)))


def conversion_difference(treatment: Arm, holdout: Arm, *, confidence: float = 1 - ALPHA) -> Difference:
    p_value = pooled_z_p_value(treatment, holdout)
    estimate = treatment.converters / treatment.eligible - holdout.converters / holdout.eligible
    return Difference(estimate, newcombe_interval(treatment, holdout, confidence=confidence), p_value,
                      p_value < 1 - confidence)


def welch_difference(treatment: Revenue, holdout: Revenue, *, confidence: float = 1 - ALPHA) -> Difference:
    """Welch's interval and test for the difference of means (treatment - holdout)."""
    return welch(treatment.mean, treatment.variance, treatment.n, holdout.mean, holdout.variance, holdout.n,
                 confidence=confidence)


def welch(mean1: float, variance1: float, n1: int, mean0: float, variance0: float, n0: int, *,
          confidence: float = 1 - ALPHA) -> Difference:
    """Welch's interval and test for mean1 - mean0 from each group's mean, sample variance and size."""
    _check_alpha(1 - confidence)
    if n1 < 2 or n0 < 2:
        raise ValueError("Welch's t needs at least two people per group")
    v1, v0 = variance1 / n1, variance0 / n0
    if v1 + v0 <= 0.0:
        raise ValueError("Welch's t needs some variance in at least one group")
    se = math.sqrt(v1 + v0)
    df = (v1 + v0) ** 2 / (v1**2 / (n1 - 1) + v0**2 / (n0 - 1))
    estimate = mean1 - mean0
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p_value = float(2 * stats.t.sf(abs(estimate) / se, df))
    return Difference(estimate, Interval(estimate - half, estimate + half), p_value, p_value < 1 - confidence)


def sample_ratio(holdout: int, treatment: int, share: float, *, alpha: float = SRM_ALPHA) -> SampleRatio:
    """Chi-square goodness of fit of the observed (holdout, treatment) sizes against `share`."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"holdout share must be in [0, 1], got {share!r}")
    _check_alpha(alpha)
    total = holdout + treatment
    if total == 0:
        return SampleRatio(share, None, 1.0, False)
    observed = holdout / total
    if share in (0.0, 1.0):  # one group must be empty: any member of it is a certain mismatch
        broken = (holdout if share == 0.0 else treatment) > 0
        return SampleRatio(share, observed, 0.0 if broken else 1.0, broken)
    expected = (total * share, total * (1 - share))
    statistic = sum((seen - wanted) ** 2 / wanted for seen, wanted in zip((holdout, treatment), expected, strict=True))
    p_value = float(stats.chi2.sf(statistic, 1))
    return SampleRatio(share, observed, p_value, p_value < alpha)


def minimum_detectable_effect(baseline: float, holdout: int, treatment: int, *, alpha: float = ALPHA,
                              power: float = POWER) -> float | None:
    """The smallest absolute increase in conversion over `baseline` (the holdout's rate) detected with
    probability `power` by the two-sided pooled z-test at `alpha`, with these group sizes; None when no
    increase up to a conversion of 1 is (or a group is empty)."""
    _check_alpha(alpha)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    if not 0.0 <= baseline <= 1.0:
        raise ValueError(f"baseline conversion must be in [0, 1], got {baseline!r}")
    if holdout <= 0 or treatment <= 0 or baseline == 1.0:
        return None
    z_alpha = float(stats.norm.ppf(1 - alpha / 2))
    z_power = float(stats.norm.ppf(power))
    total = holdout + treatment

    def shortfall(delta: float) -> float:  # zero at the detectable delta (Fleiss, solved for delta)
        p1 = baseline + delta
        pooled = (holdout * baseline + treatment * p1) / total
        null_se = math.sqrt(pooled * (1 - pooled) * (1 / holdout + 1 / treatment))
        alternative_se = math.sqrt(baseline * (1 - baseline) / holdout + p1 * (1 - p1) / treatment)
        return z_alpha * null_se + z_power * alternative_se - delta

    low, high = 1e-12, 1.0 - baseline
    if shortfall(high) > 0:
        return None
    return float(optimize.brentq(shortfall, low, high, xtol=1e-10))


def lift(holdout: Arm, treatment: Arm, share: float, *, confidence: float = 1 - ALPHA,
         min_eligible: int = MIN_ELIGIBLE, min_buyers: int = MIN_BUYERS, baseline: float | None = None,
         power: float = POWER) -> Lift:
    """A campaign's lift. `baseline` (conversion without the campaign) for the minimum detectable effect
    defaults to the holdout's observed conversion, or the pooled one while the holdout has no converter."""
    alpha = _check_alpha(1 - confidence)
    ratio = sample_ratio(holdout.eligible, treatment.eligible, share)
    reasons: list[str] = []
    if share in (0.0, 1.0):
        reasons.append(f"no {'holdout' if share == 0.0 else 'treatment'} group: the holdout share is {share:g}")
    for name, arm in (("holdout", holdout), ("treatment", treatment)):
        if arm.eligible < max(1, min_eligible):
            reasons.append(f"{name} has {arm.eligible} eligible, fewer than {max(1, min_eligible)}")
    total = holdout.eligible + treatment.eligible
    pooled = (holdout.converters + treatment.converters) / total if total else 0.0
    if not reasons:
        smallest = min(holdout.eligible, treatment.eligible) * min(pooled, 1 - pooled)
        if smallest < MIN_EXPECTED_CELL:
            reasons.append(f"too few converters or non-converters to compare (an expected count of "
                           f"{smallest:.1f}, below {MIN_EXPECTED_CELL:g})")

    conversion = revenue = None
    if not reasons:
        conversion = conversion_difference(treatment, holdout, confidence=confidence)
        if holdout.revenue is not None and treatment.revenue is not None:
            buyers = min(holdout.converters, treatment.converters)
            if buyers < min_buyers:
                reasons.append(f"a group has {buyers} buyers, fewer than {min_buyers} for a revenue interval")
            elif holdout.revenue.variance + treatment.revenue.variance > 0:
                revenue = welch_difference(treatment.revenue, holdout.revenue, confidence=confidence)
            else:
                reasons.append("revenue is the same for everyone so far")

    if baseline is None:
        baseline = holdout.converters / holdout.eligible if holdout.converters else pooled
    mde = minimum_detectable_effect(baseline, holdout.eligible, treatment.eligible, alpha=alpha, power=power)
    status: Status = ("not_enough_data" if conversion is None
                      else "sample_ratio_mismatch" if ratio.mismatch else "measured")
    return Lift(holdout, treatment, status, tuple(reasons), conversion, revenue, ratio, mde, confidence)
