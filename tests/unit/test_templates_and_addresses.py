"""Messaging's templates rendered, whose a message is once identities merge, and what may go into an
email header: pure, no I/O. (Which campaign a transition starts: tests/unit/test_campaigns.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from lifecycle_messaging.catalogue import shipped
from lifecycle_messaging.delivery import build_email
from lifecycle_messaging.domain.addresses import header_safe, valid_address
from lifecycle_messaging.domain.people import Alias, follows, repeats
from lifecycle_messaging.domain.templates import TEMPLATES, render
from lifecycle_messaging.settings import MessagingSettings


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_renders_a_one_line_subject_and_a_greeting(template):
    rendered = render(template, traits={"firstName": "Ann"}, brand="Shop", catalogue=shipped())
    assert rendered.subject.isprintable() and rendered.text.startswith("Hi Ann,")


@pytest.mark.parametrize(("alias", "owner", "follows_it"), [
    (None, None, False),  # not merged
    (Alias("ann", "ann"), None, True),  # an anonymous guest's message follows them to Ann
    (Alias("ann", "ann"), "ann", True),
    (Alias("ann", "ann"), "bob", False),  # Bob's (he claimed the device) never becomes Ann's
    (Alias("guest-2", None), None, True),  # one guest merged into another
    (Alias("guest-2", None), "bob", False),
])
def test_a_message_follows_its_key_to_the_survivor_unless_it_is_another_known_users(alias, owner, follows_it):
    assert follows(alias, owner=owner) is follows_it


@pytest.mark.parametrize(("origin_id", "person", "delivered", "repeated"), [
    ("guest", "ann", {"ann": {"welcome"}}, True),  # Ann was welcomed: her guest profile's welcome is not sent
    ("guest", "ann", {"ann": {"consideration_nudge"}}, False),
    ("guest", "ann", {}, False),
    ("ann", "ann", {"ann": {"welcome"}}, False),  # her own transitions are the stage engine's to judge
])
def test_a_message_from_another_key_of_a_person_never_repeats_what_they_have(origin_id, person, delivered, repeated):
    assert repeats("welcome", origin_id=origin_id, person=person, delivered=delivered) is repeated


def test_rendering_uses_the_first_name_or_a_greeting():
    assert "Ann" in render("thank_you_feedback", traits={"firstName": "Ann"}, brand="Shop", catalogue=shipped()).subject
    assert render("welcome", traits={}, brand="Shop", catalogue=shipped()).text.startswith("Hi there,")
    not_a_name = render("welcome", traits={"firstName": ["not", "a", "name"]}, brand="Shop", catalogue=shipped())
    assert not_a_name.text.startswith("Hi there,")


@pytest.mark.parametrize("name", ["Ann\r\nBcc: victim@example.com", "Ann\nX", "Ann\rX", "Ann\x00X", "Ann\u2028X",
                                  "Ann\x85X", "Ann\tX"])
def test_a_line_break_in_a_name_never_reaches_a_header(name):
    subject = render("thank_you_feedback", traits={"firstName": name}, brand="Shop", catalogue=shipped()).subject
    assert subject.startswith("Thank you for your order, Ann ") and subject.isprintable()


def test_header_safe_makes_one_line():
    assert header_safe(" a\r\n\r\n b\t\tc \u2029") == "a b c"


def test_an_email_can_be_built_whatever_the_stored_values():
    row = SimpleNamespace(id="m1", recipient="ann@example.com", subject="Hi\r\nBcc: x@example.com",
                          template="welcome\n", customer_id="ann\r\nX-Evil: 1", body="Hello\r\n", html=None,
                          locale=None, preheader=None, from_name=None,
                          unsubscribe_url="https://s.example/u\r\nX-Evil: 2")
    email = build_email(row, settings=MessagingSettings(environment="development"))
    assert (email["Subject"], email["X-Lifecycle-Customer"]) == ("Hi Bcc: x@example.com", "ann X-Evil: 1")
    assert email["Bcc"] is None and email["X-Evil"] is None
    assert email["List-Unsubscribe"] == "<https://s.example/u X-Evil: 2>"


@pytest.mark.parametrize(("value", "address"), [
    ("ann@example.com", "ann@example.com"), ("Ann@Example.COM", "Ann@example.com"),
    ("  ann@example.com\t", "ann@example.com"),  # surrounding space is no reason to wait forever
    ("ann@example.com\r\nBcc: x@example.com", None), ("not an address", None), ("a@b", None),
    (None, None), (42, None), ("x" * 250 + "@example.com", None),
])
def test_only_one_valid_address_is_taken(value, address):
    assert valid_address(value) == address
