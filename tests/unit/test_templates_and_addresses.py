"""Messaging's template choice and what may go into an email header: pure, no I/O."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from lifecycle_messaging.delivery import build_email
from lifecycle_messaging.domain.addresses import header_safe, valid_address
from lifecycle_messaging.domain.templates import render, template_for
from lifecycle_messaging.settings import MessagingSettings


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
    assert render("welcome", traits={"firstName": ["not", "a", "name"]}, brand="Shop").body.startswith("Hi there,")


@pytest.mark.parametrize("name", ["Ann\r\nBcc: victim@example.com", "Ann\nX", "Ann\rX", "Ann\x00X", "Ann\u2028X",
                                  "Ann\x85X", "Ann\tX"])
def test_a_line_break_in_a_name_never_reaches_a_header(name):
    subject = render("thank_you_feedback", traits={"firstName": name}, brand="Shop").subject
    assert subject.startswith("Thank you for your order, Ann ") and subject.isprintable()


def test_header_safe_makes_one_line():
    assert header_safe(" a\r\n\r\n b\t\tc \u2029") == "a b c"


def test_an_email_can_be_built_whatever_the_stored_values():
    row = SimpleNamespace(id="m1", recipient="ann@example.com", subject="Hi\r\nBcc: x@example.com",
                          template="welcome\n", customer_id="ann\r\nX-Evil: 1", body="Hello\r\n")
    email = build_email(row, settings=MessagingSettings(environment="development"))
    assert (email["Subject"], email["X-Lifecycle-Customer"]) == ("Hi Bcc: x@example.com", "ann X-Evil: 1")
    assert email["Bcc"] is None and email["X-Evil"] is None


@pytest.mark.parametrize(("value", "address"), [
    ("ann@example.com", "ann@example.com"), ("Ann@Example.COM", "Ann@example.com"),
    ("  ann@example.com\t", "ann@example.com"),  # surrounding space is no reason to wait forever
    ("ann@example.com\r\nBcc: x@example.com", None), ("not an address", None), ("a@b", None),
    (None, None), (42, None), ("x" * 250 + "@example.com", None),
])
def test_only_one_valid_address_is_taken(value, address):
    assert valid_address(value) == address
