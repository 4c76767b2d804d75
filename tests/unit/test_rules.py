"""The stage rules as data: the documented file, partial files, refused values, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from lifecycle_stage_engine.domain.rules import (
    DEFAULT_RULES,
    DEFAULT_RULES_FILE,
    DriftRules,
    IdentityRules,
    RuleSet,
    load_rules,
)
from pydantic import ValidationError


def rules_file(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_file_is_the_built_in_default():
    assert load_rules(DEFAULT_RULES_FILE) == DEFAULT_RULES


def test_the_documented_file_names_every_field_as_the_api_shows_it():
    assert yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8")) == DEFAULT_RULES.as_document()


@pytest.mark.parametrize(("text", "changed"), [
    ("version: shop-v3\nloyalty_min_orders: 3\n", {"loyalty_min_orders": 3}),
    ("version: shop-v3\ndrift:\n  min_days: 7\n", {"drift": DriftRules(min_days=7)}),
    ("version: shop-v3\nidentity:\n  trait_ids: [email]\n", {"identity": IdentityRules(trait_ids=("email",))}),
    ("version: shop-v3\norder_events: [order_completed, order_paid]\n",
     {"order_events": frozenset({"order_completed", "order_paid"})}),
])
def test_a_partial_file_takes_the_defaults_for_the_rest(tmp_path, text, changed):
    assert load_rules(rules_file(tmp_path, text)) == DEFAULT_RULES.model_copy(update={"version": "shop-v3", **changed})


def test_an_empty_file_is_the_default_rule_set(tmp_path):
    assert load_rules(rules_file(tmp_path, "# nothing changed\n")) == DEFAULT_RULES


@pytest.mark.parametrize("text", [
    "colour: red\n",
    "drift:\n  min_dayz: 7\n",
    "identity:\n  max_merge: 3\n",
    "drift:\n  min_days: -1\n",
    "drift:\n  one_time_at_risk_days: -90\n",
    "drift:\n  one_time_lapsed_days: 0\n",
    "drift:\n  at_risk_factor: 0\n",
    "drift:\n  at_risk_below_p_alive: 1.5\n",
    "identity:\n  max_anonymous_ids: 0\n",
    "identity:\n  max_merges: -1\n",
    "loyalty_min_orders: 0\n",
    "content:\n  vip: gold_banner\n",
    "version: my rules\n",
    "version: ''\n",
    "version: " + "v" * 101 + "\n",
    "- a list\n- not a mapping\n",
], ids=lambda text: text.strip().splitlines()[-1].strip()[:40])
def test_unknown_fields_and_bad_values_are_refused(tmp_path, text):
    with pytest.raises(ValidationError):
        load_rules(rules_file(tmp_path, text))


@pytest.mark.parametrize("drift", [
    {"one_time_at_risk_days": 90, "one_time_lapsed_days": 30},
    {"at_risk_factor": 4, "lapsed_factor": 2},
], ids=["one-time-days", "rhythm-factors"])
def test_rules_where_lapsed_comes_before_at_risk_are_refused(drift):
    # The timeline takes the at-risk moment to come first (`State.next_due` returns the first due moment in
    # (at-risk, lapsed) order): with lapsed sooner, `advance` misses the lapse until the at-risk moment.
    with pytest.raises(ValidationError):
        RuleSet.model_validate({"drift": drift})


@pytest.mark.parametrize("rules", [
    DEFAULT_RULES,
    RuleSet(version="shop-v3", intent_events=frozenset({"b", "a"}), drift=DriftRules(at_risk_below_p_alive=0.2),
            identity=IdentityRules(trait_ids=("email", "phone")), content={"lapsed": "winback"}),
])
def test_as_document_round_trips(rules):
    document = rules.as_document()
    assert RuleSet.model_validate(document) == rules
    assert json.loads(json.dumps(document)) == document
    assert all(value == sorted(value) for value in document.values() if isinstance(value, list))


def test_a_json_file_loads_too(tmp_path):
    document = {**DEFAULT_RULES.as_document(), "version": "json-v1", "min_review_rating": 5}
    loaded = load_rules(rules_file(tmp_path, json.dumps(document), name="rules.json"))
    assert loaded == DEFAULT_RULES.model_copy(update={"version": "json-v1", "min_review_rating": 5})
