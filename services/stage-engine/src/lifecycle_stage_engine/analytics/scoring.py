"""Every buyer scored at once: RFM, historic and predicted CLV, churn risk. Pure (no I/O, no clock).

What each buyer gets (`CustomerScore`), at least what Klaviyo shows, and from the first repeat buyers on:
- RFM scores and segment (`rfm.py`);
- historic CLV: revenue of the orders that still count (a refunded order does not), and the margin
  (revenue − cost) of the orders that name a `cost`;
- predicted CLV over the horizon (BG/NBD × Gamma-Gamma, discounted monthly, `clv.py`) with a 10–90%
  range from the parameters' uncertainty (30 draws from the fits' covariance), and total CLV;
- P(alive), churn risk (P(no order in the next 90 days)) and its band, expected orders in the horizon;
- average days between orders and the expected date of the next order (last order + that average).
Days are calendar days in UTC. When the models cannot be fitted (no repeat buyer yet, Gamma-Gamma's
q ≤ 1), the predictions are None and `FitSummary.problems` says why.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from lifecycle_stage_engine.analytics import clv, rfm

DRAWS = 30
# A small sample's maximum likelihood can put P(alive) near 0 for a buyer who ordered an hour ago: shown,
# with its range, but not acted on before this many repeat buyers.
MIN_REPEAT_BUYERS_TO_MOVE = 10
MAX_RELATIVE_ERROR = 1.0  # a fit whose standard errors exceed their estimates predicts nothing
MAX_LOG_PARAM = 10.0  # nor one with a parameter beyond e^±10 (≈ 22,026): no shop's rates or spends are that


@dataclass(frozen=True)
class Options:
    horizon_days: float = 365.0
    annual_discount_rate: float = 0.10
    churn_window_days: float = 90.0
    thresholds: rfm.Thresholds | None = None  # None: quintiles


@dataclass(frozen=True)
class CustomerOrders:
    profile_id: str
    customer_id: str
    orders: tuple[tuple[datetime, Decimal, Decimal | None], ...]  # (time, amount, cost or None)


@dataclass(frozen=True)
class CustomerScore:
    customer_id: str
    orders: int
    last_order_at: datetime
    recency_days: float
    r: int
    f: int
    m: int
    fm: int
    segment: str
    historic_clv: float
    margin: float | None
    predicted_clv: float | None
    predicted_clv_range: tuple[float, float] | None
    total_clv: float
    p_alive: float | None
    churn_risk: float | None
    churn_band: str | None
    expected_orders: float | None
    avg_days_between_orders: float | None
    next_order_expected_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitSummary:
    calibration_end: str
    unit: str
    customers: int
    repeat_buyers: int
    bgnbd: dict[str, Any] | None = None
    gamma_gamma: dict[str, Any] | None = None
    independence: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    moves_stages: bool = False  # P(alive) from this fit may move stages (drift.at_risk_below_p_alive)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fits:
    summary: FitSummary
    data: clv.RFMSummary
    purchases: clv.BgNbdFit | None
    spend: clv.GammaGammaFit | None


def transactions_of(customers: Sequence[CustomerOrders]) -> list[clv.Transaction]:
    """(profile id, time, amount) of every order: what the models are fitted on."""
    return [(c.profile_id, time, amount) for c in customers for time, amount, _ in c.orders]


def fit(transactions: Sequence[clv.Transaction], *, calibration_end: datetime, unit: clv.Unit,
        fitted_at: datetime) -> Fits:
    """BG/NBD and Gamma-Gamma on (customer, time, amount) rows up to `calibration_end`."""
    data = clv.rfm_summary(transactions, calibration_end=calibration_end.date(), unit=unit)
    # Fitted in a canonical order of the rows, not of the customers' ids: the same data give the same fit
    # to the last bit (near a flat optimum the optimiser's path would otherwise depend on the order).
    columns = data.columns()
    order = np.lexsort(columns[::-1])
    x, t_x, big_t, m = (column[order] for column in columns)
    problems: list[str] = []
    purchases = spend = None
    independence = None
    if int((x > 0).sum()) == 0:
        problems.append("no repeat buyer yet: the models need at least one customer who bought on two days")
    else:
        try:
            purchases = _identified(clv.fit_bgnbd(x, t_x, big_t, unit=unit, fitted_at=fitted_at), "BG/NBD", problems)
        except clv.FitError as error:
            problems.append(f"BG/NBD: {error}")
        try:
            spend = _identified(clv.fit_gamma_gamma(x, m, fitted_at=fitted_at), "Gamma-Gamma", problems)
            if spend is not None and spend.q <= 1:
                problems.append("Gamma-Gamma: q <= 1, the mean spend is not finite; no spend prediction")
                spend = None
        except clv.FitError as error:
            problems.append(f"Gamma-Gamma: {error}")
        check = clv.check_independence(x, m)
        independence = _floats(asdict(check))
        if check.violated:
            problems.append(f"frequency and spend are correlated (r = {check.correlation:.2f}): Gamma-Gamma "
                            "assumes they are independent, so predicted spend is biased")
    repeat_buyers = int((x > 0).sum())
    if purchases is not None and repeat_buyers < MIN_REPEAT_BUYERS_TO_MOVE:
        problems.append(f"{repeat_buyers} repeat buyers: predictions are shown, but P(alive) moves nobody's stage "
                        f"before there are {MIN_REPEAT_BUYERS_TO_MOVE}")
    summary = FitSummary(
        calibration_end=calibration_end.date().isoformat(), unit=unit, customers=len(data.customers),
        repeat_buyers=repeat_buyers, independence=independence, problems=problems,
        moves_stages=purchases is not None and repeat_buyers >= MIN_REPEAT_BUYERS_TO_MOVE,
        bgnbd=None if purchases is None else _fit_json(purchases, ("r", "alpha", "a", "b")),
        gamma_gamma=None if spend is None else _fit_json(spend, ("p", "q", "gamma")))
    return Fits(summary=summary, data=data, purchases=purchases, spend=spend)


def _identified(model: Any, name: str, problems: list[str]) -> Any:
    """The fit, or None (with the reason in `problems`) when the data do not determine it, so predictions
    from it would be arbitrary: a parameter ran off (beyond e^±MAX_LOG_PARAM, towards the optimiser's
    bounds, where it stops depends on the CPU's floating-point path), the likelihood is flat along some
    direction (no standard errors: e.g. a and b of BG/NBD both huge), or a parameter's standard error
    exceeds MAX_RELATIVE_ERROR times its estimate (a small or near-clockwork shop, where the optimum the
    optimiser lands on can differ from one CPU to the next)."""
    if any(abs(np.log(value)) > MAX_LOG_PARAM for value in model.params):
        problems.append(f"{name}: a parameter ran off towards 0 or infinity (too few or too regular repeat "
                        "buyers, or every spend alike); no predictions from it")
        return None
    names = ("r", "alpha", "a", "b") if isinstance(model, clv.BgNbdFit) else ("p", "q", "gamma")
    loose = [f"{n} ({'none' if not np.isfinite(e) else f'{e / v:.0%} of it'})"
             for n, v, e in zip(names, model.params, model.standard_errors, strict=True)
             if not model.log_covariance or not np.isfinite(e) or e > MAX_RELATIVE_ERROR * v]
    if loose:
        problems.append(f"{name}: the data do not determine the parameters (standard error of {', '.join(loose)}):"
                        " the likelihood is nearly flat, so no predictions from it; more repeat buyers or a longer"
                        " history will")
        return None
    return model


def _fit_json(model: clv.BgNbdFit | clv.GammaGammaFit, names: tuple[str, ...]) -> dict[str, Any]:
    described: dict[str, Any] = _floats({
        "params": dict(zip(names, model.params, strict=True)), "log_likelihood": model.log_likelihood,
        "n": model.n, "standard_errors": dict(zip(names, model.standard_errors, strict=True)),
        "fitted_at": model.fitted_at.isoformat() if model.fitted_at else None})
    return described


def _floats(value: Any) -> Any:
    """JSON has no nan: None instead."""
    if isinstance(value, float):
        return None if not np.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    return value


def score(customers: Sequence[CustomerOrders], *, as_of: datetime, options: Options = Options(),
          seed: int = 0) -> tuple[dict[str, CustomerScore], FitSummary]:
    """Scores by profile id for every customer with an order, and the fit they came from (unit: days)."""
    buyers = [c for c in customers if c.orders]
    transactions = transactions_of(buyers)
    fits = fit(transactions, calibration_end=as_of, unit="D", fitted_at=as_of)
    rfm_scores = rfm.scores([rfm.Buyer(customer_id=c.profile_id, last_order_at=max(t for t, _, _ in c.orders),
                                       orders=len(c.orders), revenue=sum((a for _, a, _ in c.orders), Decimal(0)))
                             for c in buyers], as_of=as_of, thresholds=options.thresholds)
    predicted = _predictions(fits, options, seed)
    row_of = {summary.customer: index for index, summary in enumerate(fits.data.customers)}
    scored = {}
    for customer in buyers:
        s, index = rfm_scores[customer.profile_id], row_of.get(customer.profile_id)
        figures = {name: (None if values is None or index is None else values[index])
                   for name, values in predicted.items()}
        historic = float(sum((a for _, a, _ in customer.orders), Decimal(0)))
        costs = [(a, c) for _, a, c in customer.orders if c is not None]
        low, high = figures.pop("low"), figures.pop("high")
        value, churn = _rounded(figures["predicted"]), _rounded(figures["churn"], 4)
        if value is None or low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
            low = high = None
        gap = _average_gap_days(customer.orders)
        last = max(t for t, _, _ in customer.orders)
        scored[customer.profile_id] = CustomerScore(
            customer_id=customer.customer_id, orders=len(customer.orders), last_order_at=last,
            recency_days=round(s.recency_days, 3),
            r=s.r, f=s.f, m=s.m, fm=s.fm, segment=s.segment, historic_clv=round(historic, 2),
            margin=round(float(sum(a - c for a, c in costs)), 2) if costs else None,
            predicted_clv=value,
            predicted_clv_range=None if low is None or high is None else (round(float(low), 2), round(float(high), 2)),
            total_clv=round(historic + (value or 0.0), 2),
            p_alive=_rounded(figures["p_alive"], 4), churn_risk=churn,
            churn_band=None if churn is None else clv.churn_band(churn).value,
            expected_orders=_rounded(figures["expected"], 3), avg_days_between_orders=_rounded(gap, 1),
            next_order_expected_at=None if gap is None else last + timedelta(days=gap))
    return scored, fits.summary


def _rounded(value: Any, places: int = 2) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), places)


def _average_gap_days(orders: tuple[tuple[datetime, Decimal, Decimal | None], ...]) -> float | None:
    """Days between the first and the last order over the gaps between them (distinct days only)."""
    days = sorted({t.date() for t, _, _ in orders})
    return None if len(days) < 2 else (days[-1] - days[0]).days / (len(days) - 1)


def _predictions(fits: Fits, options: Options, seed: int) -> dict[str, np.ndarray | None]:
    empty: dict[str, np.ndarray | None] = dict.fromkeys(("predicted", "low", "high", "p_alive", "churn", "expected"))
    if fits.purchases is None:
        return empty
    x, t_x, big_t, m = fits.data.columns()
    purchases = fits.purchases
    with np.errstate(all="ignore"):  # a non-finite figure (the model's numerical limits) becomes None
        out = dict(empty, p_alive=clv.probability_alive(purchases, x, t_x, big_t),
                   churn=clv.churn_risk(purchases, x, t_x, big_t, window_days=options.churn_window_days),
                   expected=clv.expected_purchases(purchases, options.horizon_days, x, t_x, big_t))
        if fits.spend is None:
            return out
        out["predicted"] = clv.clv(purchases, fits.spend, x, t_x, big_t, m, horizon_days=options.horizon_days,
                                   annual_discount_rate=options.annual_discount_rate)
        out["low"], out["high"] = _range(fits, options, seed)
    return out


def _range(fits: Fits, options: Options, seed: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """10th and 90th percentile of each customer's predicted CLV over parameter draws from the fits'
    asymptotic normal (log scale); None when a fit's covariance is not identified."""
    purchases, spend = fits.purchases, fits.spend
    if purchases is None or spend is None or not purchases.log_covariance or not spend.log_covariance:
        return None, None
    rng = np.random.default_rng(seed)
    bg = rng.multivariate_normal(np.log(purchases.params), np.array(purchases.log_covariance), size=DRAWS)
    gg = rng.multivariate_normal(np.log(spend.params), np.array(spend.log_covariance), size=DRAWS)
    x, t_x, big_t, m = fits.data.columns()
    values = []
    for bg_draw, gg_draw in zip(np.exp(bg), np.exp(gg), strict=True):
        if gg_draw[1] <= 1:
            continue
        r, alpha, a, b = bg_draw
        p, q, gamma = gg_draw
        drawn_purchases = clv.BgNbdFit(r, alpha, a, b, log_likelihood=0.0, n=0, unit=purchases.unit,
                                       standard_errors=purchases.standard_errors)
        drawn_spend = clv.GammaGammaFit(p, q, gamma, log_likelihood=0.0, n=0, standard_errors=spend.standard_errors)
        values.append(clv.clv(drawn_purchases, drawn_spend, x, t_x, big_t, m, horizon_days=options.horizon_days,
                              annual_discount_rate=options.annual_discount_rate))
    if len(values) < DRAWS // 2:
        return None, None
    stacked = np.stack(values)
    finite = np.isfinite(stacked)
    if finite.all():
        low, high = np.percentile(stacked, [10, 90], axis=0)
        return low, high
    stacked[~finite] = np.nan
    with warnings.catch_warnings():  # a customer without a finite draw gets nan: no range
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(stacked, [10, 90], axis=0)
        return low, high
