"""Shops built to have the property a test asserts: simulated from the models' own assumptions, so a fit
on them is well determined by construction (not at the edge of what a small sample tells)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from lifecycle_stage_engine.analytics.scoring import CustomerOrders


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, age: np.ndarray, rng: np.random.Generator):
    """λ ~ Gamma(r, α), p ~ Beta(a, b); Poisson purchases over (0, T] after a first purchase at 0,
    dropping out for good after each purchase with probability p. Returns (x, t_x, T)."""
    rate, dropout = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    x, t_x, clock = np.zeros(n), np.zeros(n), np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        with np.errstate(divide="ignore"):
            clock[idx] += rng.exponential(size=idx.size) / rate[idx]
        late = clock[idx] > age[idx]
        active[idx[late]] = False
        bought = idx[~late]
        x[bought] += 1
        t_x[bought] = clock[bought]
        active[bought[rng.random(bought.size) < dropout[bought]]] = False
    return x, t_x, age


def simulate_gamma_gamma(n: int, p: float, q: float, gamma: float, rng: np.random.Generator, *,
                         spend_follows_frequency: bool = False):
    """x ~ 1 + Poisson(3) repeat purchases; ν ~ Gamma(q, γ); each spend ~ Gamma(p, ν), so the mean
    of x spends is Gamma(px, νx). With `spend_follows_frequency` frequent buyers spend more."""
    x = 1 + rng.poisson(3, n).astype(float)
    nu = rng.gamma(q, 1 / gamma, n)
    if spend_follows_frequency:
        nu = nu / x**1.5
    return x, rng.gamma(p * x, 1 / (nu * x))


def bgnbd_shop(n: int, *, as_of: datetime, seed: int = 1, weeks: tuple[float, float] = (52, 104),
               truth: tuple[float, float, float, float] = (1.0, 4.0, 0.8, 4.0),
               spends: tuple[float, float, float] = (2.0, 6.0, 10.0)) -> list[CustomerOrders]:
    """`n` buyers whose order days follow BG/NBD (`truth` = r, α, a, b in weeks) over ages drawn from `weeks`
    before `as_of`, and whose amounts follow Gamma-Gamma (`spends` = p, q, γ: a buyer's rate ν ~ Gamma(q, γ),
    each amount ~ Gamma(p, ν)), independent of frequency. The defaults make buyers who order often and
    differ in spend: 200 of them (about 1,600 orders) determine every parameter of both models to within
    about half its value, 300 to within about a third (the fits predict when it is within all of it)."""
    rng = np.random.default_rng(seed)
    x, t_x, age = simulate_bgnbd(n, *truth, rng.uniform(*weeks, n), rng)
    p, q, gamma = spends
    shop = []
    for i in range(n):
        first = as_of - timedelta(weeks=float(age[i]))
        nu = rng.gamma(q, 1 / gamma)
        days = [first] + [first + timedelta(weeks=float(t_x[i]) * (k + 1) / x[i]) for k in range(int(x[i]))]
        shop.append(CustomerOrders(profile_id=f"sim-{i}", customer_id=f"c-sim-{i}", orders=tuple(
            (day, Decimal(f"{rng.gamma(p, 1 / nu) + 0.01:.2f}"), None) for day in days)))
    return shop


def order_events(shop: list[CustomerOrders], ev) -> list:
    """The shop's orders as `Order Completed` events made by `ev` (kind, time, **fields)."""
    return [ev("track", at, event="Order Completed", userId=c.customer_id,
               properties={"order_id": f"{c.customer_id}-{k}", "revenue": float(amount)})
            for c in shop for k, (at, amount, _) in enumerate(c.orders)]
