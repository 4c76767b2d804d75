"""The shared order vocabulary and loyalty's ledger decisions: pure, no I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lifecycle_loyalty.domain.earning import EarnRules, OrderState, decide_order_entry, points_for_amount, stage_bonus
from lifecycle_loyalty.domain.rules import CurrencyRate
from lifecycle_shared.events import derived_event_id
from lifecycle_shared.orders import order_amount, order_id_of, parse_amount, unreadable_amount_fields


@pytest.mark.parametrize(("properties", "amount"), [
    ({"revenue": 42.99}, Decimal("42.99")), ({"total": "10"}, Decimal(10)), ({"value": 3}, Decimal(3)),
    ({}, Decimal(0)), ({"revenue": -5}, Decimal(0)), ({"revenue": True, "total": 2}, Decimal(2)),
    ({"revenue": "abc", "total": 7}, Decimal(7)), ({"revenue": None, "value": " 1.5 "}, Decimal("1.5")),
    ({"revenue": 3_000_000_000}, Decimal(3_000_000_000)),  # an order in VND: past int32
    ({"revenue": "NaN"}, Decimal(0)), ({"revenue": "inf"}, Decimal(0)), ({"revenue": 1e300}, Decimal(0)),
    ({"revenue": 1e-300}, Decimal(0)), ({"revenue": "1e-20000"}, Decimal(0)),  # below a millionth: nothing
    ({"revenue": "12.99999999999999999999999999999"}, Decimal("12.999999")),  # cut, never rounded up
])
def test_order_amount_is_the_first_readable_amount_never_negative(properties, amount):
    assert order_amount(properties) == amount


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-inf", "1e400", 1e16, float("nan"), "12,50", "", [], {}, True,
                                   "1e1000000", "-1e1000000", "1e999999999999999999"])
def test_unreadable_amounts_are_named_for_ingest_to_refuse(value):
    assert parse_amount(value) is None
    assert unreadable_amount_fields({"revenue": value}) == ["revenue"]


def test_absent_or_null_amounts_are_not_unreadable():
    assert unreadable_amount_fields({"revenue": None, "name": "x"}) == []


def test_order_id_falls_back_to_the_event_id():
    assert [order_id_of(p, fallback="e") for p in ({"order_id": 7}, {"orderId": "o"}, {}, {"order_id": ""})] == [
        "7", "o", "e", "e"]


@pytest.mark.parametrize(("amount", "rate", "points"), [
    (Decimal("42.99"), Decimal(1), 42), (Decimal(10), Decimal("2.5"), 25), (Decimal("0.99"), Decimal(1), 0),
    (Decimal(3_000_000_000), Decimal(1), 3_000_000_000), (Decimal("1e15"), Decimal(1), 10**15),
    (order_amount({"revenue": "999999999999999.99999999999999999999"}), Decimal(1), 999_999_999_999_999),
])
def test_points_are_whole_units_rounded_down(amount, rate, points):
    rules = EarnRules(currencies={"USD": CurrencyRate(points=rate)})  # the default currency's rate
    assert points_for_amount(amount, rules) == points


def order(*, amount="80", completed="c1", refunded=None, held=0) -> OrderState:
    return OrderState(customer_id="ann", order_id="o1", amount=None if amount is None else Decimal(amount),
                      completed_event_id=completed, refunded_event_id=refunded, held=held)


@pytest.mark.parametrize(("state", "expected"), [
    (order(), ("earn", 80, "c1")),
    (order(held=80), None),  # the same completion again
    (order(refunded="r1", held=80), ("reverse", -80, "r1")),
    (order(refunded="r1", held=0), None),  # the refund came first: nothing was ever earned
    (order(amount=None, completed=None, refunded="r1"), None),  # a refund of an order not seen yet
    (order(amount="50", completed="c0", held=80), ("adjust", -30, "c0")),  # an earlier completion won
    (order(amount="0"), None),
])
def test_the_ledger_is_brought_to_what_the_order_should_hold(state, expected):
    entry = decide_order_entry(state)
    assert (entry and (entry.kind, entry.points, entry.cause_event_id)) == expected


def test_stage_bonus_only_for_rewarded_stages():
    assert (stage_bonus("loyalty"), stage_bonus("purchase")) == (500, 0)


def test_derived_ids_are_deterministic_and_distinct():
    assert derived_event_id("e1", "stage-engine", "purchase") == derived_event_id("e1", "stage-engine", "purchase")
    assert derived_event_id("e1", "stage-engine", "purchase") != derived_event_id("e2", "stage-engine", "purchase")
