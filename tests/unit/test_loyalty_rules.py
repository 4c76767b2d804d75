"""Loyalty's earn rules as data, and the decisions they make, as tables: currencies (a VND and a THB shop),
minimum order value, shipping, referrals, reviews within caps, stage bonuses; the documented defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from lifecycle_loyalty.domain.earning import (
    Activity,
    OrderState,
    capped,
    decide_activity,
    decide_order_entry,
    order_value,
    period_start,
    points_for_amount,
)
from lifecycle_loyalty.domain.rules import DEFAULT_EARN_RULES, Cap, CurrencyRate, EarnRules
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = ROOT / "services/loyalty/src/lifecycle_loyalty/rules/default.yaml"
AT = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)  # a Wednesday

VND_SHOP = EarnRules(version="vnd-v1", default_currency="VND", currencies={
    "VND": CurrencyRate(per=Decimal(1000), zero_decimal=True, min_order_value=Decimal(100_000))})
THB_SHOP = EarnRules(version="thb-v1", default_currency="THB",
                     currencies={"THB": CurrencyRate(points=Decimal(1), per=Decimal(25))})


def test_the_documented_defaults_are_the_codes_defaults():
    assert EarnRules.model_validate(yaml.safe_load(DEFAULT_FILE.read_text())) == DEFAULT_EARN_RULES


@pytest.mark.parametrize(("rules", "properties", "points"), [
    (DEFAULT_EARN_RULES, {"revenue": "42.99"}, 42),  # no currency: the default (USD), 1 per unit
    (DEFAULT_EARN_RULES, {"revenue": 500_000, "currency": "VND"}, 500),  # 1 per 1,000 VND
    (DEFAULT_EARN_RULES, {"revenue": "999.99", "currency": "vnd"}, 0),  # cut to 999 dong: under 1,000
    (DEFAULT_EARN_RULES, {"revenue": "1250.50", "currency": "THB"}, 125),  # 1 per 10 THB
    (DEFAULT_EARN_RULES, {"revenue": "9.99", "currency": "THB"}, 0),
    (DEFAULT_EARN_RULES, {"revenue": 12_345, "currency": "JPY"}, 123),
    (DEFAULT_EARN_RULES, {"revenue": 80, "currency": "EUR"}, 80),
    (DEFAULT_EARN_RULES, {"revenue": 80, "currency": "GBP"}, 0),  # a currency the rules do not list
    (DEFAULT_EARN_RULES, {"total": 100, "shipping": 15}, 85),  # shipping excluded from a total
    (DEFAULT_EARN_RULES, {"revenue": 100, "shipping": 15}, 100),  # revenue has no shipping in it
    (DEFAULT_EARN_RULES, {"total": 10, "shipping": 15}, 0),  # never below nothing
    (DEFAULT_EARN_RULES.model_copy(update={"purchase": DEFAULT_EARN_RULES.purchase.model_copy(
        update={"exclude_shipping": False})}), {"total": 100, "shipping": 15}, 100),
    # A shop selling in dong: orders name no currency; 100,000 VND minimum, shipping excluded.
    (VND_SHOP, {"total": 535_000, "shipping": 35_000}, 500),
    (VND_SHOP, {"total": 120_000, "shipping": 30_000}, 0),  # 90,000 VND without shipping: under the minimum
    (VND_SHOP, {"revenue": 100_000}, 100),  # the minimum itself earns
    (VND_SHOP, {"revenue": 3_000_000_000}, 3_000_000),  # past int32 in dong, exact
    # A shop selling in baht at 1 point per 25 THB.
    (THB_SHOP, {"revenue": "1999.75"}, 79),
    (THB_SHOP, {"revenue": "25.00"}, 1),
    (THB_SHOP, {"revenue": "24.99"}, 0),
])
def test_orders_earn_what_their_currency_and_the_rules_say(rules, properties, points):
    amount, shipping, currency = order_value(properties)
    state = OrderState(customer_id="ann", order_id="o1", amount=amount, completed_event_id="c1",
                       refunded_event_id=None, held=0, currency=currency, shipping=shipping)
    entry = decide_order_entry(state, rules)
    assert (entry.points if entry else 0) == points
    if entry:
        assert (entry.rule_version, entry.kind) == (rules.version, "earn")


def test_points_stay_exact_and_bounded_at_the_extremes():
    rules = EarnRules(currencies={"USD": CurrencyRate(points=Decimal("999999.999999"), per=Decimal("0.000001"))})
    assert points_for_amount(Decimal("999999999999999.999999"), rules) == 10**15  # capped: never a bigint overflow
    third = EarnRules(currencies={"USD": CurrencyRate(points=Decimal(1), per=Decimal(3))})
    assert points_for_amount(Decimal("999999999999999.999999"), third) == 333_333_333_333_333  # no rounding up


@pytest.mark.parametrize(("multiplier", "points"), [("1", 99), ("1.5", 148), ("2.25", 222), ("0", 0)])
def test_a_tier_multiplier_multiplies_purchase_points_rounded_down(multiplier, points):
    state = OrderState(customer_id="ann", order_id="o1", amount=Decimal("99.50"), completed_event_id="c1",
                       refunded_event_id=None, held=0, multiplier=Decimal(multiplier))
    entry = decide_order_entry(state)
    assert (entry.points if entry else 0) == points


def test_amounts_are_exact_decimals_never_floats():
    # 0.1 + 0.2 THB-cents style amounts: 30.30 THB at 1 per 10.10 is exactly 3 points
    rules = EarnRules(currencies={"USD": CurrencyRate(per=Decimal("10.10"))})
    assert points_for_amount(Decimal("30.30"), rules) == 3


def referral(referrer: str | None = "bob") -> Activity:
    return Activity(kind="referral", customer_id="ann", cause_id="referral:ann", at=AT, referrer_id=referrer)


def review() -> Activity:
    return Activity(kind="review", customer_id="ann", cause_id="review:r1", at=AT)


@pytest.mark.parametrize(("rules", "activity", "earned", "expected"), [
    (DEFAULT_EARN_RULES, referral(), {}, [("bob", 500, "referral:referrer"), ("ann", 250, "referral:referee")]),
    (EarnRules(referral={"referrer": 0, "referee": 300}), referral(), {}, [("ann", 300, "referral:referee")]),
    (EarnRules(referral={"referrer": 700, "referee": 0}), referral(), {}, [("bob", 700, "referral:referrer")]),
    (DEFAULT_EARN_RULES, referral(None), {}, []),  # no referrer named: nobody referred anybody
    (DEFAULT_EARN_RULES, referral("ann"), {}, []),  # referring oneself earns nothing
    (EarnRules(referral={"cap": {"period": "month", "points": 1200}}), referral(),
     {("bob", "referral:referrer"): 1000}, [("bob", 200, "referral:referrer"), ("ann", 250, "referral:referee")]),
    (DEFAULT_EARN_RULES, review(), {}, [("ann", 50, "review")]),
    (DEFAULT_EARN_RULES, review(), {("ann", "review"): 120}, [("ann", 30, "review")]),  # 150 a week
    (DEFAULT_EARN_RULES, review(), {("ann", "review"): 150}, []),
])
def test_referrals_and_reviews_earn_within_their_caps(rules, activity, earned, expected):
    entries = decide_activity(activity, earned_in_period=earned, rules=rules)
    assert [(e.customer_id, e.points, e.rule) for e in entries] == expected
    assert all(e.rule_version == rules.version and e.at == AT for e in entries)


@pytest.mark.parametrize(("period", "start"), [
    ("day", datetime(2026, 3, 11, tzinfo=UTC)), ("week", datetime(2026, 3, 9, tzinfo=UTC)),
    ("month", datetime(2026, 3, 1, tzinfo=UTC)),
])
def test_cap_periods_are_calendar_periods(period, start):
    assert period_start(period, AT) == start


def test_capped():
    assert [capped(50, None, 10**9), capped(50, Cap(period="day", points=60), 30),
            capped(50, Cap(period="day", points=60), 70)] == [50, 30, 0]


@pytest.mark.parametrize("document", [
    {"version": "has space"}, {"currencies": {"usd": {}}}, {"currencies": {"USD": {"per": 0}}},
    {"pending_days": -1}, {"expiry": {"kind": "sometimes"}}, {"stage_reached": {"nirvana": 5}},
    {"review": {"cap": {"period": "fortnight", "points": 5}}}, {"unknown": 1},
    {"default_currency": "GBP"},  # orders naming no currency would earn nothing
])
def test_rule_sets_that_do_not_fit_are_refused(document):
    with pytest.raises(ValidationError):
        EarnRules.model_validate(document)
