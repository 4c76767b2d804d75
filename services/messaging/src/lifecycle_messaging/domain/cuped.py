"""CUPED: a campaign's lift with the variance a pre-period covariate explains taken out. Pure. Optional.

Deng, Xu, Kohavi and Walker (2013), "Improving the sensitivity of online controlled experiments by
utilizing pre-experiment data". Each person's outcome y (converted 0/1, or revenue in the window) is
replaced by y - theta * (x - mean x), x being something known before the (would-be) send that the
campaign cannot have changed: the person's net revenue or orders over a pre-period, or their predicted
CLV at the time of assignment. theta = cov(x, y) / var(x) over both groups together. Because x is
fixed before assignment and the assignment is random, the adjustment has expectation zero in both
groups: the estimate stays unbiased and only its variance drops, by the share of y's variance x
explains (corr(x, y)^2). The interval and test are Welch's on the adjusted values (`lift.welch`).

Estimating theta from the same data makes the adjusted values slightly dependent; with thousands of
people the effect on the interval is negligible, and the simulation in `tests/unit/test_campaign_lift.py`
shows the adjusted intervals covering the true effect as often as the plain ones while being narrower.
The same minimum of buyers per group as for the plain revenue interval applies (`lift.MIN_BUYERS`): the
adjustment does not remove revenue's skew.

Inputs are sufficient statistics per group - n and the sums of y, y^2, x, x^2 and x*y - so one SQL
aggregate gives them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from lifecycle_messaging.domain.lift import ALPHA, Difference, welch


@dataclass(frozen=True)
class Paired:
    """Each person's outcome y and pre-period covariate x over a group, as sums."""

    n: int
    y: float
    yy: float
    x: float
    xx: float
    xy: float

    @classmethod
    def of(cls, outcomes: Iterable[float], covariates: Iterable[float]) -> Paired:
        pairs = [(float(y), float(x)) for y, x in zip(outcomes, covariates, strict=True)]
        return cls(len(pairs), math.fsum(y for y, _ in pairs), math.fsum(y * y for y, _ in pairs),
                   math.fsum(x for _, x in pairs), math.fsum(x * x for _, x in pairs),
                   math.fsum(x * y for y, x in pairs))

    def __add__(self, other: Paired) -> Paired:
        return Paired(self.n + other.n, self.y + other.y, self.yy + other.yy, self.x + other.x,
                      self.xx + other.xx, self.xy + other.xy)

    def _co(self, a: float, b: float, ab: float) -> float:
        return (ab - a * b / self.n) / (self.n - 1) if self.n > 1 else 0.0

    @property
    def variance_y(self) -> float:
        return max(0.0, self._co(self.y, self.y, self.yy))

    @property
    def variance_x(self) -> float:
        return max(0.0, self._co(self.x, self.x, self.xx))

    @property
    def covariance(self) -> float:
        return self._co(self.x, self.y, self.xy)


@dataclass(frozen=True)
class Adjusted:
    """The CUPED difference (treatment - holdout), the theta used, and the share of the difference's
    variance removed (0 when x explains nothing)."""

    difference: Difference
    theta: float
    variance_reduction: float


def cuped_difference(treatment: Paired, holdout: Paired, *, confidence: float = 1 - ALPHA) -> Adjusted:
    """The difference of y's means adjusted by the covariate x, with Welch's interval and test."""
    if treatment.n < 2 or holdout.n < 2:
        raise ValueError("CUPED needs at least two people per group")
    both = treatment + holdout
    theta = both.covariance / both.variance_x if both.variance_x > 0 else 0.0
    centre = both.x / both.n

    def adjusted(group: Paired) -> tuple[float, float]:
        mean = group.y / group.n - theta * (group.x / group.n - centre)
        variance = group.variance_y - 2 * theta * group.covariance + theta * theta * group.variance_x
        return mean, max(0.0, variance)

    mean1, variance1 = adjusted(treatment)
    mean0, variance0 = adjusted(holdout)
    difference = welch(mean1, variance1, treatment.n, mean0, variance0, holdout.n, confidence=confidence)
    plain = treatment.variance_y / treatment.n + holdout.variance_y / holdout.n
    reduced = variance1 / treatment.n + variance0 / holdout.n
    return Adjusted(difference, theta, 1.0 - reduced / plain if plain > 0 else 0.0)
