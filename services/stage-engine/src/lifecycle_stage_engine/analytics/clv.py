"""Predictive customer lifetime value: BG/NBD for purchases, Gamma-Gamma for spend, discounted CLV.

Models
- BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way", Marketing Science
  24(2)): while alive a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after each
  purchase they drop out for good with probability p ~ Beta(a, b).
- Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves", JMR 42(4); Fader
  & Hardie 2013, "The Gamma-Gamma Model of Monetary Value"): a customer's spends are Gamma(p, ν)
  with ν ~ Gamma(q, γ), independent of their purchase process.

Inputs are the per-customer summary the literature uses (`rfm_summary`): frequency x = repeat
purchase periods, recency t_x = time from first to last purchase, age T = time from first purchase
to the calibration end, all in one time unit; monetary m̄ = mean spend of the repeat purchases.
Fits are maximum likelihood on the closed-form log-likelihoods, every parameter optimised on the
log scale (so it stays positive) with scipy's L-BFGS-B.

Pure: no I/O and no clock; `fitted_at` is whatever the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import expit, gammaln, hyp2f1

Unit = Literal["D", "W"]
Array = NDArray[np.float64]
DAYS_PER_UNIT: dict[str, float] = {"D": 1.0, "W": 7.0}
DAYS_PER_MONTH = 365.25 / 12
INDEPENDENCE_THRESHOLD = 0.3
LOG_BOUND = 15.0  # every log-parameter is searched within ±LOG_BOUND
"""|Pearson r| between frequency and mean spend above which Gamma-Gamma's independence is doubtful."""

Floats = tuple[float, ...]
Transaction = tuple[Hashable, date | datetime, float | int | Decimal]


class FitError(RuntimeError):
    """The optimiser did not converge, or there is nothing to fit."""


# --- input: transactions -> RFM summary ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerRFM:
    customer: Hashable
    frequency: int  # repeat purchase periods (the first purchase is not counted)
    recency: float  # first to last purchase, in the summary's unit
    age: float  # first purchase to the calibration end, in the summary's unit
    monetary: float  # mean spend per repeat purchase period; 0.0 when frequency == 0


@dataclass(frozen=True, slots=True)
class RFMSummary:
    customers: tuple[CustomerRFM, ...]
    calibration_end: date
    unit: Unit

    def columns(self) -> tuple[Array, Array, Array, Array]:
        """frequency, recency, age, monetary as float arrays, in customer order."""
        rows = np.array([(c.frequency, c.recency, c.age, c.monetary) for c in self.customers], dtype=float)
        rows = rows.reshape(-1, 4)
        return rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]


def rfm_summary(transactions: Iterable[Transaction], *, calibration_end: date, unit: Unit = "D") -> RFMSummary:
    """Summarise (customer, order time, amount) rows as of `calibration_end` (inclusive).

    Orders are bucketed into calendar days first (several orders on one day are one purchase,
    their amounts summed), as the literature's summaries do; with unit "W" times are then in
    (fractional) weeks: the CDNOW summary of Fader, Hardie & Lee counts purchase days and measures
    t_x and T as days / 7 (e.g. 30.43, 38.86). Orders after the calibration end are ignored.
    Datetimes are bucketed by their own calendar date: convert them to the shop's zone first.
    """
    per_customer: dict[Hashable, dict[date, float]] = {}
    for customer, at, amount in transactions:
        day = at.date() if isinstance(at, datetime) else at
        if day > calibration_end:
            continue
        days = per_customer.setdefault(customer, {})
        days[day] = days.get(day, 0.0) + float(amount)
    scale = DAYS_PER_UNIT[unit]
    rows = tuple(_customer_rfm(c, days, calibration_end, scale) for c, days in per_customer.items())
    return RFMSummary(customers=rows, calibration_end=calibration_end, unit=unit)


def _customer_rfm(customer: Hashable, days: dict[date, float], end: date, scale: float) -> CustomerRFM:
    ordered = sorted(days)
    first, repeats = ordered[0], ordered[1:]
    spend = [days[d] for d in repeats]
    return CustomerRFM(
        customer=customer,
        frequency=len(repeats),
        recency=(ordered[-1] - first).days / scale,
        age=(end - first).days / scale,
        monetary=sum(spend) / len(spend) if spend else 0.0,
    )


# --- BG/NBD ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BgNbdFit:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n: int
    unit: Unit
    standard_errors: tuple[float, float, float, float]  # of r, α, a, b; nan when not identified
    fitted_at: datetime | None = None
    log_covariance: tuple[Floats, ...] = ()  # of log r, log α, log a, log b; () when not identified

    @property
    def params(self) -> tuple[float, float, float, float]:
        return self.r, self.alpha, self.a, self.b


def bgnbd_log_likelihood(params: ArrayLike, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> Array:
    """Per-customer log-likelihood, Fader, Hardie & Lee (2005) eq. 6 (r, α, a, b) = params."""
    r, alpha, a, b = np.asarray(params, dtype=float)
    x, t_x, big_t = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (frequency, recency, age)))
    common = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
              + gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x))
    still_alive = -(r + x) * np.log(alpha + big_t)
    dropped = np.full(x.shape, -np.inf)
    bought = x > 0
    dropped[bought] = (np.log(a) - np.log(b + x[bought] - 1) - (r + x[bought]) * np.log(alpha + t_x[bought]))
    per_customer: Array = common + np.logaddexp(still_alive, dropped)
    return per_customer


def fit_bgnbd(frequency: ArrayLike, recency: ArrayLike, age: ArrayLike, *, unit: Unit,
              fitted_at: datetime | None = None) -> BgNbdFit:
    """Maximum-likelihood r, α, a, b from every customer's (x, t_x, T), times in `unit`."""
    x, t_x, big_t = (np.asarray(v, dtype=float) for v in (frequency, recency, age))
    if x.size == 0:
        raise FitError("no customers to fit")
    rate = max(float(x.mean()), 0.1) / max(float(big_t.mean()), 1e-6)
    start = (1.0, 1.0 / rate, 1.0, 1.0)  # r / α matches the mean purchase rate
    params, ll, se, cov = _maximise(lambda p: bgnbd_log_likelihood(p, x, t_x, big_t), start)
    r, alpha, a, b = params
    se_r, se_alpha, se_a, se_b = se
    return BgNbdFit(r=r, alpha=alpha, a=a, b=b, log_likelihood=ll, n=int(x.size), unit=unit,
                    standard_errors=(se_r, se_alpha, se_a, se_b), fitted_at=fitted_at, log_covariance=cov)


def probability_alive(fit: BgNbdFit, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> Array:
    """P(alive at T | x, t_x, T) = 1 / (1 + δ(x>0) · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))."""
    return expit(-_log_odds_dropped(fit, frequency, recency, age))


def _log_odds_dropped(fit: BgNbdFit, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> Array:
    x, t_x, big_t = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (frequency, recency, age)))
    odds = np.full(x.shape, -np.inf)
    m = x > 0
    odds[m] = (np.log(fit.a) - np.log(fit.b + x[m] - 1)
               + (fit.r + x[m]) * (np.log(fit.alpha + big_t[m]) - np.log(fit.alpha + t_x[m])))
    return odds


def expected_purchases(fit: BgNbdFit, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike,
                       age: ArrayLike) -> Array:
    """E[purchases in (T, T+t] | x, t_x, T], Fader, Hardie & Lee (2005) eq. 10; t in the fit's unit.

    (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x−1; t/(α+T+t))] · P(alive).
    """
    r, alpha, a, b = fit.params
    t, x, big_t = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (t, frequency, age)))
    horizon = alpha + big_t + t
    shrink = np.exp((r + x) * (np.log(alpha + big_t) - np.log(horizon)))  # ((α+T)/(α+T+t))^(r+x)
    tail = shrink * hyp2f1(r + x, b + x, a + b + x - 1, t / horizon)
    expected: Array = (a + b + x - 1) / (a - 1) * (1 - tail) * probability_alive(fit, x, recency, big_t)
    return expected


def expected_purchases_new(fit: BgNbdFit, t: ArrayLike) -> Array:
    """E[X(t)]: expected repeat purchases in (0, t] of a customer who has just made a first purchase."""
    r, alpha, a, b = fit.params
    t = np.asarray(t, dtype=float)
    tail = (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t))
    return (a + b - 1) / (a - 1) * (1 - tail)


# --- churn risk -----------------------------------------------------------------------------


class ChurnBand(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class ChurnBands:
    """Low below `medium_from` (an order in the window is more likely than not), High from
    `high_from` (at most a one-in-five chance of ordering), Medium between."""

    medium_from: float = 0.5
    high_from: float = 0.8


def churn_risk(fit: BgNbdFit, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike, *,
               window_days: float = 90.0) -> Array:
    """P(no purchase in (T, T+τ]), τ = `window_days`, under the BG/NBD model.

    A customer who is alive at T has, given their history, λ ~ Gamma(r+x, α+T), and can only drop
    out right after a purchase, so P(no purchase in τ | alive) = ((α+T)/(α+T+τ))^(r+x). Hence
        churn risk = P(alive) · ((α+T)/(α+T+τ))^(r+x) + (1 − P(alive)).
    """
    x, big_t = np.broadcast_arrays(np.asarray(frequency, dtype=float), np.asarray(age, dtype=float))
    tau = window_days / DAYS_PER_UNIT[fit.unit]
    quiet_if_alive = np.exp((fit.r + x) * (np.log(fit.alpha + big_t) - np.log(fit.alpha + big_t + tau)))
    alive = probability_alive(fit, x, recency, big_t)
    risk: Array = alive * quiet_if_alive + (1 - alive)
    return risk


DEFAULT_CHURN_BANDS = ChurnBands()


def churn_band(risk: float, bands: ChurnBands = DEFAULT_CHURN_BANDS) -> ChurnBand:
    if risk >= bands.high_from:
        return ChurnBand.HIGH
    return ChurnBand.MEDIUM if risk >= bands.medium_from else ChurnBand.LOW


# --- Gamma-Gamma ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GammaGammaFit:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    n: int
    standard_errors: tuple[float, float, float]  # of p, q, γ; nan when not identified
    fitted_at: datetime | None = None
    log_covariance: tuple[Floats, ...] = ()  # of log p, log q, log γ; () when not identified

    @property
    def params(self) -> tuple[float, float, float]:
        return self.p, self.q, self.gamma


@dataclass(frozen=True, slots=True)
class IndependenceCheck:
    """Pearson correlation of frequency and mean spend over the repeat buyers; `violated` when
    |correlation| > threshold (nan, and not violated, with fewer than 3 buyers or no variation)."""

    correlation: float
    threshold: float
    n: int
    violated: bool


def gamma_gamma_log_likelihood(params: ArrayLike, frequency: ArrayLike, monetary: ArrayLike) -> Array:
    """Per-customer log density of the mean spend m̄ of x ≥ 1 purchases (Fader & Hardie 2013, eq. 3)."""
    p, q, gamma = np.asarray(params, dtype=float)
    x, m = np.broadcast_arrays(np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float))
    per_customer: Array = (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(gamma)
                           + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(gamma + m * x))
    return per_customer


def fit_gamma_gamma(frequency: ArrayLike, monetary: ArrayLike, *, fitted_at: datetime | None = None) -> GammaGammaFit:
    """Maximum-likelihood p, q, γ from the customers with x ≥ 1 and m̄ > 0 (the others are skipped)."""
    x, m = _repeat_buyers(frequency, monetary)
    if x.size == 0:
        raise FitError("no repeat buyers to fit")
    start = (2.0, 3.0, float(m.mean()))  # p·γ/(q−1) equals the observed mean spend
    params, ll, se, cov = _maximise(lambda p: gamma_gamma_log_likelihood(p, x, m), start)
    p, q, gamma = params
    se_p, se_q, se_gamma = se
    return GammaGammaFit(p=p, q=q, gamma=gamma, log_likelihood=ll, n=int(x.size),
                         standard_errors=(se_p, se_q, se_gamma), fitted_at=fitted_at, log_covariance=cov)


def expected_spend(fit: GammaGammaFit, frequency: ArrayLike, monetary: ArrayLike) -> Array:
    """E[mean spend | x, m̄] = p(γ + x·m̄)/(p·x + q − 1): a weighted average of the population mean
    pγ/(q−1) and the customer's m̄ with weight px/(px+q−1) on m̄; x = 0 gives the population mean."""
    if fit.q <= 1:
        raise ValueError("Gamma-Gamma with q <= 1 has no finite mean spend")
    x, m = np.broadcast_arrays(np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float))
    m = np.where(x > 0, m, 0.0)
    spend: Array = fit.p * (fit.gamma + x * m) / (fit.p * x + fit.q - 1)
    return spend


def check_independence(frequency: ArrayLike, monetary: ArrayLike, *,
                       threshold: float = INDEPENDENCE_THRESHOLD) -> IndependenceCheck:
    """Gamma-Gamma assumes spend is independent of purchase frequency; check it on the repeat buyers."""
    x, m = _repeat_buyers(frequency, monetary)
    if x.size < 3 or x.std() == 0 or m.std() == 0:
        return IndependenceCheck(correlation=float("nan"), threshold=threshold, n=int(x.size), violated=False)
    corr = float(np.corrcoef(x, m)[0, 1])
    return IndependenceCheck(correlation=corr, threshold=threshold, n=int(x.size), violated=abs(corr) > threshold)


def _repeat_buyers(frequency: ArrayLike, monetary: ArrayLike) -> tuple[Array, Array]:
    x, m = np.broadcast_arrays(np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float))
    keep = (x >= 1) & (m > 0)
    return x[keep], m[keep]


# --- CLV ------------------------------------------------------------------------------------


def clv(purchases: BgNbdFit, spend: GammaGammaFit, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike,
        monetary: ArrayLike, *, horizon_days: float = 365.0, annual_discount_rate: float = 0.10) -> Array:
    """Predicted value of each customer's purchases over the next `horizon_days`, discounted.

    Discrete monthly discounting, as is standard (e.g. lifetimes' customer_lifetime_value): the
    horizon is cut into months of 365.25/12 days; month k's expected purchases ΔE_k (the BG/NBD
    conditional expectation at its end minus at its start) are discounted from the month's end:
        CLV = E[spend] · Σ_k ΔE_k / (1 + d)^(t_k / 12),
    with d the annual rate (a monthly rate of (1+d)^(1/12) − 1) and t_k the month's end in months;
    a final partial month is discounted from its own end. E[spend] is Gamma-Gamma's conditional
    expectation. Revenue, not margin: multiply by a margin outside if orders carry a cost.
    """
    edges = _month_edges(horizon_days) / DAYS_PER_UNIT[purchases.unit]
    x, t_x, big_t = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (frequency, recency, age)))
    cumulative = np.stack([expected_purchases(purchases, t, x, t_x, big_t) for t in edges[1:]])
    per_month = np.diff(cumulative, axis=0, prepend=0.0)
    months = edges[1:] * DAYS_PER_UNIT[purchases.unit] / DAYS_PER_MONTH
    discount = ((1 + annual_discount_rate) ** (-months / 12)).reshape(-1, *([1] * x.ndim))
    value: Array = expected_spend(spend, x, monetary) * (discount * per_month).sum(axis=0)
    return value


def _month_edges(horizon_days: float) -> Array:
    """0, one month, two months, … in days, ending exactly at the horizon."""
    full = int(np.floor(horizon_days / DAYS_PER_MONTH + 1e-9))
    edges = np.arange(full + 1, dtype=np.float64) * DAYS_PER_MONTH
    return edges if horizon_days - edges[-1] < 1e-9 else np.append(edges, horizon_days)


# --- optimiser ------------------------------------------------------------------------------


def _maximise(log_likelihood: Callable[[Array], Array],
              start: tuple[float, ...]) -> tuple[Floats, float, Floats, tuple[Floats, ...]]:
    """Maximise Σ log-likelihood over log-parameters with L-BFGS-B: (params, log-likelihood, standard
    errors, covariance of the log-parameters)."""

    def total(log_params: Array) -> float:
        with np.errstate(all="ignore"):
            value = float(log_likelihood(np.exp(log_params)).sum())
        return value if np.isfinite(value) else -np.inf

    def loss(log_params: Array) -> float:
        return -total(log_params)

    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    result = minimize(loss, np.log(start), method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9})
    if not np.isfinite(result.fun):
        raise FitError(f"likelihood not finite: {result.message}")
    params = np.exp(result.x)
    covariance = _log_scale_covariance(total, result.x)
    if covariance is None:
        return tuple(params.tolist()), float(-result.fun), (float("nan"),) * params.size, ()
    variance = np.diag(covariance)
    errors = params * np.sqrt(np.where(variance > 0, variance, np.nan))  # θ·SE(log θ) = SE(θ), delta method
    identified = bool(np.all(variance > 0))
    return (tuple(params.tolist()), float(-result.fun), tuple(errors.tolist()),
            tuple(tuple(row) for row in covariance.tolist()) if identified else ())


def _log_scale_covariance(total: Callable[[Array], float], at: Array,
                          step: float = 1e-4) -> NDArray[np.floating[Any]] | None:
    """Covariance of the log-parameters: the inverse observed information (central-difference Hessian);
    None when the Hessian cannot be inverted."""
    k = at.size
    shifts = np.eye(k) * step
    hessian = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            hi, hj = shifts[i], shifts[j]
            hessian[i, j] = hessian[j, i] = (total(at + hi + hj) - total(at + hi - hj) - total(at - hi + hj)
                                             + total(at - hi - hj)) / (4 * step * step)
    try:
        return np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        return None
