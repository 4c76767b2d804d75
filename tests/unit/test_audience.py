"""Audience conditions (`domain.audience`): each field read from what messaging knows, each operator, and what a
missing field means - pure, tables."""

from __future__ import annotations

import pytest
from lifecycle_messaging.domain.audience import FIELDS, Condition, Profile, failing, holds, in_audience, value_of

ANN = Profile(stage="retention", orders=3, revenue=120.5,
              traits={"locale": "vi_VN", "timezone": "Asia/Ho_Chi_Minh", "rfmSegment": "Champions",
                      "churn_band": "low", "clvBand": "high", "loyaltyTier": "Gold", "points": "1250",
                      "plan": "pro", "newsletter": True, "age": 31, "nickname": "  ", "huge": 10**400})


@pytest.mark.parametrize(("field", "value"), [
    ("stage", "retention"), ("orders", 3), ("revenue", 120.5),
    ("locale", "vi-vn"), ("language", "vi"), ("timezone", "Asia/Ho_Chi_Minh"),
    ("segment", "Champions"), ("churn_band", "low"), ("clv_band", "high"), ("tier", "Gold"), ("points", "1250"),
    ("traits.plan", "pro"), ("traits.newsletter", True), ("traits.missing", None),
])
def test_each_field_is_read_from_the_profile(field, value):
    assert value_of(field, ANN) == value


def test_every_named_field_is_documented_and_unknown_ones_are_missing():
    assert set(FIELDS) == {"stage", "orders", "revenue", "locale", "language", "segment", "churn_band", "clv_band",
                           "tier", "points", "timezone"}
    assert value_of("segment", Profile()) is None and value_of("language", Profile(traits={"locale": 7})) is None


def test_what_a_trigger_told_wins_over_the_traits():
    assert value_of("tier", Profile(traits={"tier": "Silver"}, values={"tier": "Gold"})) == "Gold"


@pytest.mark.parametrize(("field", "op", "value", "expected"), [
    ("stage", "eq", "retention", True),
    ("stage", "eq", "RETENTION ", True),  # text: case and surrounding space do not matter
    ("stage", "ne", "retention", False),
    ("stage", "in", ["purchase", "retention"], True),
    ("stage", "not_in", ["purchase", "retention"], False),
    ("language", "in", ["vi", "th"], True),
    ("locale", "eq", "vi-vn", True),
    ("orders", "gte", 3, True),
    ("orders", "gt", 3, False),
    ("revenue", "lt", 200, True),
    ("revenue", "lte", 120.5, True),
    ("points", "gte", 1000, True),  # a numeric text compares as a number
    ("points", "eq", 1250, True),
    ("traits.age", "eq", "31", True),
    ("traits.plan", "gt", 1, False),  # a text is not a number: never greater
    ("traits.newsletter", "eq", True, True),
    ("traits.newsletter", "eq", "true", False),  # a boolean equals only a boolean
    ("traits.age", "eq", True, False),
    ("tier", "exists", None, True),
    ("tier", "not_exists", None, False),
    # missing (unknown, or empty text): only not_exists, ne and not_in hold
    ("traits.missing", "exists", None, False),
    ("traits.missing", "not_exists", None, True),
    ("traits.missing", "ne", "x", True),
    ("traits.missing", "not_in", ["x"], True),
    ("traits.missing", "eq", "x", False),
    ("traits.missing", "in", ["x"], False),
    ("traits.missing", "lt", 5, False),
    ("traits.nickname", "exists", None, False),  # blank text is no value
    ("traits.huge", "gt", 5, False),  # beyond a float's range: not a number it can compare
])
def test_each_operator(field, op, value, expected):
    assert holds(Condition(field=field, op=op, value=value), ANN) is expected


def test_all_conditions_must_hold_and_the_failing_ones_are_named():
    audience = [Condition(field="language", op="eq", value="vi"), Condition(field="orders", op="lt", value=2),
                Condition(field="stage", op="in", value=["retention", "loyalty"])]
    assert not in_audience(audience, ANN)
    assert [c.field for c in failing(audience, ANN)] == ["orders"]
    assert in_audience([], Profile())  # no conditions: everyone the trigger names
