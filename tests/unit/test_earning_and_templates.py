"""Loyalty earn rules and messaging's template choice: pure, no I/O."""

from __future__ import annotations

import pytest
from lifecycle_loyalty.domain.earning import EarnRules, order_id_of, points_for_order, stage_bonus
from lifecycle_messaging.domain.templates import render, template_for
from lifecycle_shared.events import derived_event_id


@pytest.mark.parametrize(("properties", "points"), [
    ({"revenue": 42.99}, 42), ({"total": "10"}, 10), ({"value": 3}, 3), ({}, 0),
    ({"revenue": -5}, 0), ({"revenue": True}, 0), ({"revenue": "abc", "total": 7}, 7),
])
def test_one_point_per_whole_currency_unit(properties, points):
    assert points_for_order(properties) == points


def test_earn_rate_is_data():
    assert points_for_order({"revenue": 10}, EarnRules(points_per_currency_unit=2.5)) == 25


def test_stage_bonus_only_for_rewarded_stages():
    assert (stage_bonus("loyalty"), stage_bonus("purchase")) == (500, 0)


def test_order_id_falls_back_to_the_event_id():
    assert (order_id_of({"order_id": 7}, fallback="e"), order_id_of({}, fallback="e")) == ("7", "e")


@pytest.mark.parametrize(("from_stage", "to_stage", "template"), [
    (None, "awareness", "welcome"),
    ("awareness", "consideration", "consideration_nudge"),
    ("consideration", "purchase", "thank_you_feedback"),
    ("purchase", "retention", "retention_offer"),
    ("retention", "loyalty", "referral_invite"),
    ("awareness", "purchase", "thank_you_feedback"),
    ("purchase", "consideration", None),  # moved back by a refund: no message
    ("loyalty", "retention", None),
    (None, "unknown", None),
])
def test_each_forward_stage_has_its_template(from_stage, to_stage, template):
    assert template_for(from_stage=from_stage, to_stage=to_stage) == template


def test_rendering_uses_the_first_name_or_a_greeting():
    assert "Ann" in render("thank_you_feedback", traits={"firstName": "Ann"}, brand="Shop").subject
    assert render("welcome", traits={}, brand="Shop").body.startswith("Hi there,")


def test_derived_ids_are_deterministic_and_distinct():
    assert derived_event_id("e1", "stage-engine", "purchase") == derived_event_id("e1", "stage-engine", "purchase")
    assert derived_event_id("e1", "stage-engine", "purchase") != derived_event_id("e2", "stage-engine", "purchase")
