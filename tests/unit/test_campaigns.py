"""Campaigns as data (issue 16): triggers, the default campaigns for every transition, what a campaign may be
saved as, and what cancels a waiting message when it comes due - pure, tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from lifecycle_messaging.campaignbook import CampaignBook, shipped_campaigns
from lifecycle_messaging.campaigning import verdict
from lifecycle_messaging.catalogue import shipped
from lifecycle_messaging.domain.audience import Condition, Profile
from lifecycle_messaging.domain.campaigns import (
    Campaign,
    CampaignSpec,
    for_loyalty,
    for_touchpoint,
    for_transition,
    problems,
    starting_types,
    touchpoint_types,
)
from lifecycle_messaging.domain.consent import TRANSACTIONAL, purpose_of
from lifecycle_messaging.domain.templates import TEMPLATES
from lifecycle_messaging.domain.triggers import LoyaltyFact, loyalty_fact, move_of
from lifecycle_shared.events import (
    POINTS_EXPIRING_TYPE,
    REWARD_REDEEMED_TYPE,
    TIER_CHANGED_TYPE,
    PointsExpiringData,
    RewardRedeemedData,
    TierChangedData,
)
from lifecycle_shared.stages import JOURNEY, REACTIVATED, Stage
from pydantic import ValidationError

NOW = datetime(2026, 5, 4, 10, tzinfo=UTC)


def campaign(campaign_id: str = "c", *, version: int = 1, **spec) -> Campaign:
    body = {"name": "C", "trigger": {"type": "stage_changed"}, "template": "welcome", **spec}
    return Campaign(campaign_id, version, CampaignSpec.model_validate(body))


@pytest.mark.parametrize(("from_stage", "to_stage", "reason", "move"), [
    (None, "awareness", "first_touch", "forward"),
    ("awareness", "purchase", "first_order", "forward"),
    ("purchase", "consideration", "refund", "backward"),
    ("loyalty", "retention", "rfm", "backward"),
    ("retention", "retention", "r", "other"),
    ("retention", "at_risk", "no_order_for_a_while", "drift"),
    (None, "at_risk", "r", "drift"),
    ("at_risk", "lapsed", "no_order_for_long", "drift"),
    ("lapsed", "at_risk", "r", "other"),  # never back up a drift
    ("at_risk", "at_risk", "r", "other"),
    ("at_risk", "purchase", REACTIVATED, "reactivated"),
    ("lapsed", "loyalty", REACTIVATED, "reactivated"),
    ("at_risk", "purchase", "first_order", "other"),  # off a drift, but not a reactivation
    ("consideration", "purchase", REACTIVATED, "forward"),  # not from a drift: along the journey
    (None, "unknown", "r", "other"),
])
def test_each_transition_is_one_kind_of_move(from_stage, to_stage, reason, move):
    assert move_of(from_stage=from_stage, to_stage=to_stage, reason=reason) == move


@pytest.mark.parametrize(("from_stage", "to_stage", "reason", "campaigns"), [
    (None, "awareness", "first_touch", ["welcome"]),
    ("awareness", "consideration", "product_viewed", ["consideration_nudge"]),
    ("consideration", "purchase", "first_order", ["thank_you_feedback", "feedback_request"]),
    ("awareness", "purchase", "first_order", ["thank_you_feedback", "feedback_request"]),
    ("purchase", "retention", "repeat_order", ["retention_offer"]),
    ("retention", "loyalty", "rfm", ["referral_invite"]),
    ("purchase", "consideration", "refund", []),  # moved back by a refund: no message
    ("loyalty", "retention", "rfm", []),
    (None, "unknown", "r", []),
    # drifting away: a come-back offer, then we miss you; never back up the drift
    ("retention", "at_risk", "no_order_for_a_while", ["come_back_offer"]),
    ("purchase", "at_risk", "no_order_for_a_while", ["come_back_offer"]),
    ("at_risk", "lapsed", "no_order_for_long", ["we_miss_you"]),
    ("loyalty", "lapsed", "no_order_for_long", ["we_miss_you"]),
    ("lapsed", "at_risk", "r", []),
    ("at_risk", "at_risk", "r", []),
    # back from a drift: welcome back, never the first-order thank-you nor the stage's own message
    ("at_risk", "purchase", REACTIVATED, ["welcome_back"]),
    ("lapsed", "purchase", REACTIVATED, ["welcome_back"]),
    ("lapsed", "retention", REACTIVATED, ["welcome_back"]),
    ("at_risk", "loyalty", REACTIVATED, ["welcome_back"]),
    ("at_risk", "purchase", "first_order", []),  # off a drift but not a reactivation: no words for it
    ("at_risk", "consideration", "refund", []),
    ("consideration", "purchase", REACTIVATED, ["thank_you_feedback", "feedback_request"]),
])
def test_the_default_campaigns_each_transition_starts(from_stage, to_stage, reason, campaigns):
    started = for_transition(shipped_campaigns(), from_stage=from_stage, to_stage=to_stage, reason=reason,
                             profile=Profile(stage=to_stage))
    assert [c.id for c in started] == campaigns


def test_every_stage_has_a_default_campaign_and_each_is_its_templates_namesake():
    defaults = {c.id: c for c in shipped_campaigns()}
    assert set(defaults) == set(TEMPLATES)  # holdout groups and messages from before campaigns keep their campaign
    assert all(c.template == c.id and c.enabled and c.spec.holdout_share is None for c in defaults.values())
    entered = {stage for c in defaults.values() for stage in getattr(c.spec.trigger, "to_stages", None) or []}
    assert entered == set(Stage)
    assert defaults["feedback_request"].delay == timedelta(days=3)
    assert defaults["feedback_request"].spec.cancelled_by == ["Order Refunded"]
    assert (defaults["cart_reminder"].delay, defaults["cart_reminder"].spec.cancelled_by) == (
        timedelta(hours=4), ["Order Completed"])
    assert [c.id for c in defaults.values() if purpose_of(c.template) == TRANSACTIONAL] == [
        "thank_you_feedback", "reward_redeemed"]  # each confirms what the customer just did
    assert all(not problems(c.spec, templates=shipped()) for c in defaults.values())


def test_the_book_reads_only_the_touchpoints_its_campaigns_name():
    assert CampaignBook().touchpoint_types == {"touchpoint.cart_abandoned", "touchpoint.product_added",
                                               "touchpoint.order_completed", "touchpoint.order_refunded"}
    disabled = campaign("cart", trigger={"type": "touchpoint", "events": ["Wishlist Added"]},
                        cancelled_by=["Order Completed"], enabled=False)
    assert touchpoint_types([disabled]) == frozenset()


def test_only_a_touchpoint_trigger_s_types_start_a_campaign():
    # The handler reads profiles and addresses only for these: for any other type no campaign can start.
    assert starting_types(shipped_campaigns()) == {"touchpoint.cart_abandoned", "touchpoint.product_added"}
    disabled = campaign("cart", trigger={"type": "touchpoint", "events": ["Wishlist Added"]}, enabled=False)
    assert starting_types([disabled]) == frozenset()
    for event_type in CampaignBook().touchpoint_types - starting_types(shipped_campaigns()):
        assert for_touchpoint(shipped_campaigns(), event_type=event_type, profile=Profile()) == []


@pytest.mark.parametrize(("event_type", "started"), [
    ("touchpoint.cart_abandoned", ["cart_reminder"]),
    ("touchpoint.product_added", ["cart_reminder"]),
    ("touchpoint.order_completed", []),  # what cancels it starts nothing
    ("touchpoint.product_viewed", []),
])
def test_the_cart_reminder_starts_on_a_cart_event(event_type, started):
    assert [c.id for c in for_touchpoint(shipped_campaigns(), event_type=event_type, profile=Profile())] == started


GOLD = campaign("gold", trigger={"type": "loyalty", "event": "tier_reached", "tiers": ["Gold"]})
EXPIRING = campaign("expiring", trigger={"type": "loyalty", "event": "points_expiring", "min_points": 500})
REDEEMED = campaign("redeemed", trigger={"type": "loyalty", "event": "reward_redeemed",
                                         "reward_kinds": ["free_shipping"]})
ANY_TIER = campaign("any_tier", trigger={"type": "loyalty", "event": "tier_reached"},
                    audience=[{"field": "tier", "op": "in", "value": ["gold", "platinum"]}])


@pytest.mark.parametrize(("fact", "started"), [
    (LoyaltyFact("tier_reached", "ann", NOW, tier="Gold"), ["gold", "any_tier"]),
    (LoyaltyFact("tier_reached", "ann", NOW, tier="Silver"), []),  # the audience reads the event's tier
    (LoyaltyFact("tier_lost", "ann", NOW, tier="Gold"), []),
    (LoyaltyFact("points_expiring", "ann", NOW, points=500), ["expiring"]),
    (LoyaltyFact("points_expiring", "ann", NOW, points=499), []),
    (LoyaltyFact("reward_redeemed", "ann", NOW, reward_kind="free_shipping"), ["redeemed"]),
    (LoyaltyFact("reward_redeemed", "ann", NOW, reward_kind="discount_code"), []),
])
def test_loyalty_triggers(fact, started):
    profile = Profile(traits={"tier": "Bronze"}, values=fact.values)
    assert [c.id for c in for_loyalty([GOLD, EXPIRING, REDEEMED, ANY_TIER], fact, profile=profile)] == started


@pytest.mark.parametrize(("fact", "started"), [
    (LoyaltyFact("tier_reached", "ann", NOW, tier="silver"), ["tier_reached"]),
    (LoyaltyFact("tier_lost", "ann", NOW, tier="member"), []),  # no default says so
    (LoyaltyFact("points_expiring", "ann", NOW, points=100), ["points_expiring"]),
    (LoyaltyFact("points_expiring", "ann", NOW, points=99), []),  # too few to nag about
    (LoyaltyFact("reward_redeemed", "ann", NOW, reward_kind="early_access"), ["reward_redeemed"]),
])
def test_the_default_loyalty_campaigns(fact, started):
    profile = Profile(stage="retention", values=fact.values)
    assert [c.id for c in for_loyalty(shipped_campaigns(), fact, profile=profile)] == started


def test_loyalty_events_are_read_as_facts():
    tier = TierChangedData(customer_id="ann", from_tier="Silver", to_tier="Gold", direction="reached",
                           points_in_window=1200, rule_version="v", changed_at=NOW)
    assert loyalty_fact(TIER_CHANGED_TYPE, tier) == LoyaltyFact("tier_reached", "ann", NOW, tier="Gold")
    expiring = PointsExpiringData(customer_id="ann", points=300, expires_at=NOW, lot_ids=["l"], warned_at=NOW)
    assert loyalty_fact(POINTS_EXPIRING_TYPE, expiring).values == {  # type: ignore[union-attr]
        "points": 300, "expires_at": NOW}
    redeemed = RewardRedeemedData(customer_id="ann", redemption_id="r", reward_id="w", reward_kind="free_shipping",
                                  cost=500, redeemed_at=NOW)
    assert loyalty_fact(REWARD_REDEEMED_TYPE, redeemed).values == {  # type: ignore[union-attr]
        "reward": "free_shipping", "cost": 500}
    assert loyalty_fact("loyalty.debt_recorded", expiring) is None


@pytest.mark.parametrize(("spec", "complaint"), [
    ({"trigger": {"type": "stage_changed", "to_stages": ["nowhere"]}}, "to_stages"),
    ({"trigger": {"type": "loyalty", "event": "tier_reached", "min_points": 5}}, "min_points does not apply"),
    ({"trigger": {"type": "touchpoint", "events": []}}, "events"),
    ({"trigger": {"type": "page"}}, "trigger"),
    ({"delay_hours": -1}, "delay_hours"),
    ({"delay_hours": float("nan")}, "delay_hours"),
    ({"holdout_share": 1.5}, "holdout_share"),
    ({"channel": "sms"}, "channel"),
    ({"template": "../etc/passwd"}, "template"),
    ({"name": "bad\x00name"}, "NUL"),
    ({"content": {"not a tag!": {"subject": "s", "text": "t", "html": "h"}}}, "language tag"),
    ({"content": {"vi": {"subject": "s", "text": "t", "html": "h"}, "VI": {"subject": "s", "text": "t",
                                                                      "html": "h"}}}, "twice"),
    ({"audience": [{"field": "shoe_size", "op": "eq", "value": 42}]}, "unknown field"),
    ({"audience": [{"field": "stage", "op": "eq", "value": "everywhere"}]}, "not a stage"),
    ({"audience": [{"field": "orders", "op": "gt", "value": "many"}]}, "takes a number"),
    ({"audience": [{"field": "stage", "op": "in", "value": "retention"}]}, "list"),
    ({"audience": [{"field": "locale", "op": "exists", "value": "vi"}]}, "takes no value"),
    ({"surprise": True}, "surprise"),
])
def test_a_campaign_that_cannot_be_is_refused_naming_the_field(spec, complaint):
    body = {"name": "C", "trigger": {"type": "stage_changed"}, "template": "welcome", **spec}
    with pytest.raises(ValidationError, match=complaint):
        CampaignSpec.model_validate(body)


def test_a_template_error_is_found_when_the_campaign_is_saved_naming_the_locale_part_and_line():
    spec = CampaignSpec.model_validate({
        "name": "C", "trigger": {"type": "stage_changed"}, "template": "welcome",
        "content": {"vi-VN": {"subject": "Chào {{ name }}", "text": "ok", "html": "<p>\n{{ name }\n</p>"},
                    "th": {"subject": "{{ nonsense }}", "text": "ok", "html": "ok"},
                    "en": {"subject": "{{ ''.__class__.__mro__ }}", "text": "t", "html": "h"}}})
    assert set(spec.content or {}) == {"vi-vn", "th", "en"}  # tags as the locale chain names them
    found = dict(problems(spec, templates=shipped()))
    assert set(found) == {"content.vi-vn.html", "content.th.subject", "content.en.subject"}
    assert found["content.vi-vn.html"].startswith("line 2: ")
    assert "nonsense" in found["content.th.subject"] and "not allowed" in found["content.en.subject"]
    unknown = CampaignSpec.model_validate({"name": "C", "trigger": {"type": "stage_changed"}, "template": "nope"})
    assert [where for where, _ in problems(unknown, templates=shipped())] == ["template"]


def test_a_campaign_renders_its_own_copy_where_it_has_some_and_the_template_elsewhere():
    own = campaign("vip", content={"vi": {"subject": "Chào {{ name }}!", "text": "Chào {{ name }}\n",
                                          "html": "<p>Chào {{ name }}</p>"}})
    catalogue = CampaignBook([own]).catalogue(own)
    assert set(catalogue["welcome"]) == {"en", "vi", "th"}
    assert catalogue["welcome"]["vi"].source.subject == "Chào {{ name }}!"
    assert catalogue["welcome"]["en"] is shipped()["welcome"]["en"]


def row(**fields):
    return SimpleNamespace(**{"event_time": NOW, "customer_id": "ann", **fields})


CART = campaign("cart_reminder", trigger={"type": "touchpoint", "events": ["Product Added"]}, delay_hours=4,
                cancelled_by=["Order Completed"], template="cart_reminder")
VIETNAMESE = campaign("vi_only", audience=[{"field": "language", "op": "eq", "value": "vi"},
                                           {"field": "orders", "op": "lt", "value": 2}])
TIERED = campaign("tiered", trigger={"type": "loyalty", "event": "tier_reached"},
                  audience=[{"field": "tier", "op": "eq", "value": "Gold"}])


@pytest.mark.parametrize(("made", "current", "cancelled_at", "profile", "expected"), [
    (CART, CART, {}, None, None),  # nothing happened since: it goes
    (CART, CART, {"touchpoint.order_completed": NOW + timedelta(hours=1)}, None,
     ("cancelled", "touchpoint.order_completed")),  # the cart was bought
    (CART, CART, {"touchpoint.order_completed": NOW - timedelta(hours=1)}, None, None),  # an order before the cart
    (CART, CART, {"touchpoint.order_completed": NOW}, None, None),  # not after it
    (CART, None, {}, None, ("campaign_disabled", "deleted")),
    (CART, campaign("cart_reminder", version=2, template="cart_reminder", enabled=False), {}, None,
     ("campaign_disabled", "disabled")),
    (VIETNAMESE, VIETNAMESE, {}, Profile(traits={"locale": "vi-VN"}, orders=1), None),
    (VIETNAMESE, VIETNAMESE, {}, Profile(traits={"locale": "th-TH"}, orders=1), ("audience", "language eq")),
    (VIETNAMESE, VIETNAMESE, {}, Profile(traits={"locale": "vi"}, orders=3), ("audience", "orders lt")),
    (VIETNAMESE, VIETNAMESE, {}, Profile(traits={}), None),  # nothing learned since it was queued: it stands
    (VIETNAMESE, VIETNAMESE, {}, None, None),
    (TIERED, TIERED, {}, Profile(traits={"tier": "Silver"}), None),  # the event told the tier: not judged again
    (None, None, {}, None, None),  # no campaign (the operator's notice)
])
def test_what_a_waiting_message_is_judged_by_when_it_comes_due(made, current, cancelled_at, profile, expected):
    assert verdict(row(), made, current, cancelled_at=cancelled_at, profile=profile) == expected


@pytest.mark.parametrize("stage", JOURNEY)
def test_a_condition_on_the_stage_takes_stage_names_in_any_case(stage):
    assert Condition(field="stage", op="eq", value=stage.upper()).value == stage.upper()
