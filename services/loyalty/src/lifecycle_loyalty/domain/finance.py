"""What the points are worth, for the finance team: pure computations (no I/O, no clock).

Rounding: every figure is computed exactly (`Decimal` at 50 significant digits for the quotients) and
rounded once, half up, to the reporting currency's minor units (`decimals`): sales' shares are summed
unrounded and the total rounded (the goods get the rounded sales less it, so the two add up).
Periods of deferred revenue are differences of rounded cumulative figures, so consecutive
periods add up to the cumulative figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ISSUED = ("earn", "bonus")
REDEEMED = ("spend", "refund_spend")
EXPIRED = ("expire",)


def money(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 50
        return numerator / denominator


@dataclass(frozen=True)
class RollForward:
    """opening + issued - redeemed - expired + adjustments = closing (points; `redeemed`/`expired` positive)."""

    opening: int
    issued: int
    redeemed: int
    expired: int
    adjustments: dict[str, int] = field(default_factory=dict)  # by entry kind: reverse, adjust, move_*, debt...

    @property
    def closing(self) -> int:
        return self.opening + self.issued - self.redeemed - self.expired + sum(self.adjustments.values())


def roll_forward(before: Mapping[str, int], during: Mapping[str, int]) -> RollForward:
    """`before`: points by entry kind of entries before the period; `during`: of entries within it."""
    return RollForward(
        opening=sum(before.values()),
        issued=sum(during.get(k, 0) for k in ISSUED),
        redeemed=-sum(during.get(k, 0) for k in REDEEMED),
        expired=-sum(during.get(k, 0) for k in EXPIRED),
        adjustments={k: v for k, v in sorted(during.items()) if k not in ISSUED + REDEEMED + EXPIRED and v})


@dataclass(frozen=True)
class Cohort:
    """The lots earned in one month: points earned, expired unredeemed, still held; mature when none of its
    points can still be redeemed (every lot expired or emptied)."""

    month: str  # YYYY-MM
    earned: int
    expired: int
    remaining: int
    mature: bool


@dataclass(frozen=True)
class Breakage:
    rate: Decimal
    method: str  # "mature_cohorts" | "fallback"
    mature_points: int


def breakage(cohorts: Iterable[Cohort], fallback: Decimal) -> Breakage:
    """The share of the points of mature cohorts that expired unredeemed; `fallback` until a cohort matures."""
    mature = [c for c in cohorts if c.mature and c.earned > 0]
    earned = sum(c.earned for c in mature)
    if not earned:
        return Breakage(rate=fallback, method="fallback", mature_points=0)
    return Breakage(rate=ratio(Decimal(sum(c.expired for c in mature)), Decimal(earned)),
                    method="mature_cohorts", mature_points=earned)


def liability(outstanding: int, value_per_point: Decimal, breakage_rate: Decimal, decimals: int) -> Decimal:
    """Outstanding points x value per point, net of expected breakage."""
    return money(Decimal(max(outstanding, 0)) * value_per_point * (1 - breakage_rate), decimals)


def points_share(price: Decimal, points: int, value_per_point: Decimal, redemption_rate: Decimal) -> Decimal:
    """IFRS 15 relative stand-alone selling prices, exact (unrounded): the goods at the price paid, the points
    at points x value per point x expected redemption rate; what of the price goes to the points."""
    ssp_points = Decimal(points) * value_per_point * redemption_rate
    if ssp_points <= 0 or price <= 0:
        return Decimal(0)
    return price * ratio(ssp_points, price + ssp_points)


def recognised(allocated: Decimal, redeemed: int, expected: Decimal, decimals: int) -> Decimal:
    """Cumulative revenue of the points: allocated x redeemed / expected to be redeemed (at most all of it)."""
    if expected <= 0:
        return money(allocated if redeemed > 0 else Decimal(0), decimals)
    share = min(Decimal(1), ratio(Decimal(max(redeemed, 0)), expected))
    return money(allocated * share, decimals)


CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
PointValue = Annotated[Decimal, Field(ge=0, le=10**9, decimal_places=6)]


class FinanceSettings(BaseModel):
    """What the finance team estimates; every change is kept with the moment it took effect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field("USD", pattern=r"^[A-Z]{3}$",
                          description="the reporting currency (IFRS 15 figures: its orders)")
    decimals: int = Field(2, ge=0, le=6, description="minor units figures are rounded to (half up)")
    value_per_point: dict[CurrencyCode, PointValue] = Field(
        default_factory=lambda: {"USD": Decimal("0.01")}, max_length=200,
        description="stand-alone selling price of one point, per currency")
    expected_redemption_rate: Decimal = Field(Decimal("0.95"), ge=0, le=1, decimal_places=6, description=(
        "share of issued points expected to be redeemed (IFRS 15 allocation and recognition)"))
    breakage_fallback: Decimal = Field(Decimal("0.05"), ge=0, le=1, decimal_places=6, description=(
        "breakage used for the liability until an earning-month cohort has matured"))


@dataclass(frozen=True)
class Sale:
    price: Decimal
    points: int
    settings: FinanceSettings  # in force at the sale: its allocation never changes afterwards


@dataclass(frozen=True)
class DeferredRevenue:
    """IFRS 15 position at a moment: what sales allocated to points, what of it is recognised so far."""

    sales: Decimal
    allocated_to_goods: Decimal
    allocated_to_points: Decimal
    points_issued: int
    points_redeemed: int
    expected_redemptions: Decimal
    recognised: Decimal

    @property
    def contract_liability(self) -> Decimal:
        return self.allocated_to_points - self.recognised


def deferred_revenue(sales: Iterable[Sale], redeemed: int, estimate: FinanceSettings) -> DeferredRevenue:
    """Sales in the reporting currency (each allocated with the estimate of its day); recognition with the
    estimate in force now: points issued x expected redemption rate is the total expected to be redeemed."""
    decimals = estimate.decimals
    total, exact_share, issued = Decimal(0), Decimal(0), 0
    for sale in sales:
        vpp = sale.settings.value_per_point.get(estimate.currency, Decimal(0))
        total += sale.price
        exact_share += points_share(sale.price, sale.points, vpp, sale.settings.expected_redemption_rate)
        issued += sale.points
    total = money(total, decimals)
    to_points = money(exact_share, decimals)  # rounded once, on the total: per sale, rounding would drift
    goods = total - to_points
    expected = Decimal(issued) * estimate.expected_redemption_rate
    return DeferredRevenue(sales=total, allocated_to_goods=goods, allocated_to_points=to_points,
                           points_issued=issued, points_redeemed=redeemed, expected_redemptions=expected,
                           recognised=recognised(to_points, redeemed, expected, decimals))
