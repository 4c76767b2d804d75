"""The earn rules as data: a versioned rule set (YAML or JSON, `rules/default.yaml` documents the defaults;
an operator replaces it with `PUT /v1/admin/rules`). Validation only: no I/O, no clock.

Amounts are exact (`Decimal`): an order earns floor(amount / per x points) in its currency, an amount in a
zero-decimal currency (VND, JPY, KRW) cut to whole units first. Every entry names the rule set's version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from lifecycle_shared.stages import Stage
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EXPIRY_KINDS = ("never", "after_days", "end_of_month", "end_of_year")


@dataclass(frozen=True)
class ExpiryPolicy:
    """When a lot expires: `never`; `after_days` (`count` days after earning); `end_of_month` (at the end
    of the month `count` months after the earning month: 0 = the same month); `end_of_year` (likewise).
    Months and years are UTC's."""

    kind: str = "never"
    count: int = 0

    def expires_at(self, earned_at: datetime) -> datetime | None:
        if self.kind == "after_days":
            return earned_at + timedelta(days=self.count)
        start = earned_at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if self.kind == "end_of_month":
            months = earned_at.year * 12 + earned_at.month - 1 + self.count + 1  # the month after the last one
            return start.replace(year=months // 12, month=months % 12 + 1)
        if self.kind == "end_of_year":
            return start.replace(year=earned_at.year + self.count + 1, month=1)
        return None


@dataclass(frozen=True)
class LotPolicy:
    pending: timedelta = timedelta(days=14)
    expiry: ExpiryPolicy = ExpiryPolicy()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CurrencyRate(_Strict):
    points: Decimal = Field(Decimal(1), ge=Decimal("0.000001"), le=1_000_000, decimal_places=6,
                            description="points earned per `per` units")
    per: Decimal = Field(Decimal(1), ge=Decimal("0.000001"), le=Decimal("1e12"), decimal_places=6,
                         description="units of the currency")
    zero_decimal: bool = Field(False, description="no minor units (VND, JPY, KRW): fractions are cut first")
    min_order_value: Decimal = Field(Decimal(0), ge=0, le=Decimal("1e15"), decimal_places=6,
                                     description="an order worth less (shipping excluded) earns nothing")


class Cap(_Strict):
    period: Literal["day", "week", "month"] = Field(description="calendar period (UTC; weeks start on Monday)")
    points: int = Field(ge=0, le=10**12, description="at most this many points per period from the rule")


class PurchaseRule(_Strict):
    exclude_shipping: bool = Field(True, description="`shipping` is taken off `total`/`value` (`revenue` has none)")


class ReferralRule(_Strict):
    referrer: int = Field(500, ge=0, le=10**9, description="points to the customer who referred (0: none)")
    referee: int = Field(250, ge=0, le=10**9, description="points to the customer referred (0: none)")
    cap: Cap | None = Field(None, description="caps the referrer's referral points")


class ReviewRule(_Strict):
    points: int = Field(50, ge=0, le=10**9)
    cap: Cap | None = Cap(period="week", points=150)


class ExpiryRule(_Strict):
    kind: Literal["never", "after_days", "end_of_month", "end_of_year"] = "never"
    count: int = Field(0, ge=0, le=3650, description="days (after_days), or months/years after the earning one")
    warn_days: int = Field(14, ge=0, le=365, description="announce points expiring this many days ahead (0: never)")


class TierLevel(_Strict):
    name: str = Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9._-]+$")
    min_points: int = Field(ge=0, le=10**15, description="points earned in the window to reach the tier")
    multiplier: Decimal = Field(Decimal(1), ge=0, le=100, decimal_places=3,
                                description="purchase points are multiplied by it while the customer holds the tier")


class TierRule(_Strict):
    """Tiers by points earned over a rolling window (refunds take back the progress their order gave);
    a customer keeps the highest tier they qualified for at any moment of the last `grace_days`."""

    window_days: int = Field(365, ge=1, le=3650)
    grace_days: int = Field(30, ge=0, le=3650)
    levels: list[TierLevel] = Field(default_factory=lambda: [
        TierLevel(name="member", min_points=0), TierLevel(name="silver", min_points=1000),
        TierLevel(name="gold", min_points=5000)], min_length=1, max_length=20)

    @field_validator("levels")
    @classmethod
    def _ascending(cls, value: list[TierLevel]) -> list[TierLevel]:
        if value[0].min_points != 0:
            raise ValueError("the first tier starts at 0 points")
        if any(b.min_points <= a.min_points for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("tiers go up: each needs more points than the one before")
        if len({level.name for level in value}) != len(value):
            raise ValueError("tier names are unique")
        return value


DEFAULT_CURRENCIES = {
    "USD": CurrencyRate(), "EUR": CurrencyRate(),
    "VND": CurrencyRate(per=Decimal(1000), zero_decimal=True), "THB": CurrencyRate(per=Decimal(10)),
    "JPY": CurrencyRate(per=Decimal(100), zero_decimal=True), "KRW": CurrencyRate(per=Decimal(1000), zero_decimal=True),
}


class EarnRules(_Strict):
    """The rule set in force. An order in a currency not listed earns nothing."""

    version: str = Field("default-v1", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    default_currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="of orders that name none")
    currencies: dict[str, CurrencyRate] = Field(default_factory=lambda: dict(DEFAULT_CURRENCIES), max_length=200)
    purchase: PurchaseRule = PurchaseRule()
    referral: ReferralRule = ReferralRule()
    review: ReviewRule = ReviewRule()
    stage_reached: dict[Stage, Annotated[int, Field(ge=0, le=10**9)]] = Field(
        default_factory=lambda: {Stage.LOYALTY: 500}, description="a one-off bonus on first reaching the stage")
    pending_days: int = Field(14, ge=0, le=365, description="earned points wait this long (the return window)")
    expiry: ExpiryRule = ExpiryRule()
    tiers: TierRule = TierRule()

    @field_validator("currencies")
    @classmethod
    def _iso_codes(cls, value: dict[str, CurrencyRate]) -> dict[str, CurrencyRate]:
        bad = [code for code in value if not (len(code) == 3 and code.isascii() and code.isalpha() and code.isupper())]
        if bad:
            raise ValueError(f"not ISO 4217 currency codes: {sorted(bad)[:5]}")
        return value

    @model_validator(mode="after")
    def _default_currency_is_listed(self) -> EarnRules:
        if self.default_currency not in self.currencies:
            raise ValueError(f"default_currency {self.default_currency} is not among the currencies")
        return self

    @property
    def lots(self) -> LotPolicy:
        return LotPolicy(pending=timedelta(days=self.pending_days),
                         expiry=ExpiryPolicy(self.expiry.kind, self.expiry.count))

    def as_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


DEFAULT_EARN_RULES = EarnRules()
