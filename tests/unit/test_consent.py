"""Consent's pure parts: who may be sent what, which change stands, what traits tell, and the unsubscribe
token signed and checked on a clock the test holds."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_messaging.domain.consent import (
    API,
    BLOCKED,
    BOUNCED,
    COMPLAINED,
    LINK,
    MARKETING,
    PROVIDER,
    STATES,
    SUBSCRIBED,
    TOUCHPOINT,
    TRANSACTIONAL,
    UNSUBSCRIBED,
    change,
    may_send,
    purpose_of,
    state_from_traits,
)
from lifecycle_messaging.domain.suppression import CONSENT, REASONS
from lifecycle_messaging.domain.templates import TEMPLATES
from lifecycle_messaging.domain.unsubscribe import TOKEN_LENGTH, TokenError, link, sign, verify

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
SECRET = b"s" * 32
MESSAGE = str(uuid.UUID(int=7))


@pytest.mark.parametrize(("purpose", "state", "opt_in", "allowed"), [
    (MARKETING, None, False, True),  # soft opt-in: nothing told, allowed until they say no
    (MARKETING, None, True, False),  # strict: only after a yes
    (MARKETING, SUBSCRIBED, True, True),
    (MARKETING, SUBSCRIBED, False, True),
    *[(MARKETING, state, opt_in, False) for state in (UNSUBSCRIBED, BOUNCED, COMPLAINED, BLOCKED)
      for opt_in in (False, True)],
    *[(TRANSACTIONAL, state, opt_in, True) for state in (None, *STATES) for opt_in in (False, True)],
])
def test_who_may_be_sent_what(purpose, state, opt_in, allowed):
    assert may_send(purpose, state, require_opt_in=opt_in) is allowed


def test_every_template_has_a_purpose_and_only_the_order_thank_you_and_the_reward_confirmation_are_transactional():
    assert {t: purpose_of(t) for t in TEMPLATES if purpose_of(t) == TRANSACTIONAL} == {
        "thank_you_feedback": TRANSACTIONAL, "reward_redeemed": TRANSACTIONAL}
    assert purpose_of("welcome") == purpose_of("retention_offer") == purpose_of("come_back_offer") == MARKETING
    assert purpose_of("tier_reached") == purpose_of("points_expiring") == MARKETING
    assert purpose_of("something_new") == MARKETING  # unclassified: the safe side


@pytest.mark.parametrize(("current", "new", "source", "explicit", "result"), [
    # the link only unsubscribes, and never lifts a harder state
    (None, UNSUBSCRIBED, LINK, True, UNSUBSCRIBED),
    (SUBSCRIBED, UNSUBSCRIBED, LINK, True, UNSUBSCRIBED),
    (UNSUBSCRIBED, UNSUBSCRIBED, LINK, True, None),  # already: nothing to record
    (BOUNCED, UNSUBSCRIBED, LINK, True, None),
    (None, SUBSCRIBED, LINK, True, None),
    # touchpoints: a no always (but over a harder state); a yes over nothing, over a no only if explicit
    (SUBSCRIBED, UNSUBSCRIBED, TOUCHPOINT, False, UNSUBSCRIBED),
    (None, SUBSCRIBED, TOUCHPOINT, False, SUBSCRIBED),
    (UNSUBSCRIBED, SUBSCRIBED, TOUCHPOINT, False, None),
    (UNSUBSCRIBED, SUBSCRIBED, TOUCHPOINT, True, SUBSCRIBED),
    (COMPLAINED, SUBSCRIBED, TOUCHPOINT, True, None),
    (BLOCKED, UNSUBSCRIBED, TOUCHPOINT, True, None),
    (None, BOUNCED, TOUCHPOINT, True, None),
    # the provider: bounces and complaints over anything but a block
    (SUBSCRIBED, BOUNCED, PROVIDER, True, BOUNCED),
    (UNSUBSCRIBED, COMPLAINED, PROVIDER, True, COMPLAINED),
    (BLOCKED, BOUNCED, PROVIDER, True, None),
    (None, SUBSCRIBED, PROVIDER, True, None),
    # an operator: anything, the only way out of a bounce, a complaint or a block
    (BOUNCED, SUBSCRIBED, API, True, SUBSCRIBED),
    (BLOCKED, SUBSCRIBED, API, True, SUBSCRIBED),
    (None, BLOCKED, API, True, BLOCKED),
    (BLOCKED, BLOCKED, API, True, None),
    (None, UNSUBSCRIBED, "carrier pigeon", True, None),
])
def test_which_change_stands(current, new, source, explicit, result):
    assert change(current, new, source=source, explicit=explicit) == result


@pytest.mark.parametrize(("traits", "state"), [
    ({"unsubscribed": True}, UNSUBSCRIBED),
    ({"unsubscribed": False}, SUBSCRIBED),
    ({"emailOptIn": True}, SUBSCRIBED),
    ({"emailOptIn": False}, UNSUBSCRIBED),
    ({"email_opt_in": True, "unsubscribed": True}, UNSUBSCRIBED),  # a no anywhere wins
    ({"emailOptIn": "yes"}, None),  # only booleans count
    ({"email": "a@example.com"}, None),
])
def test_what_traits_tell(traits, state):
    assert state_from_traits(traits) == state


def test_consent_is_a_suppression_reason():
    assert CONSENT in REASONS


def test_a_token_names_the_message_until_it_expires():
    token = sign(MESSAGE, secret=SECRET, now=NOW, valid_for=timedelta(days=60))
    assert len(token) == TOKEN_LENGTH and token.isascii() and "=" not in token
    found = verify(token, secret=SECRET, now=NOW + timedelta(days=59, hours=23))
    assert found.message_id == MESSAGE and found.expires_at == NOW + timedelta(days=60)
    with pytest.raises(TokenError) as expired:
        verify(token, secret=SECRET, now=NOW + timedelta(days=60))
    assert expired.value.problem == "expired"
    assert link("https://shop.example/", token) == f"https://shop.example/v1/unsubscribe/{token}"


def test_a_token_says_nothing_personal_in_the_clear():
    token = sign(MESSAGE, secret=SECRET, now=NOW, valid_for=timedelta(days=60))
    raw = base64.urlsafe_b64decode(token + "=")
    assert uuid.UUID(MESSAGE).bytes in raw  # the message id, an opaque id; nothing else but time and MAC
    assert len(raw) == 1 + 16 + 8 + 16


def _flip(token: str, at: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "="))
    raw[at] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("at", [1, 20, 24, 30])  # the message id, the expiry (moved later), the MAC
def test_a_tampered_token_is_invalid(at):
    token = sign(MESSAGE, secret=SECRET, now=NOW, valid_for=timedelta(days=60))
    with pytest.raises(TokenError) as refused:
        verify(_flip(token, at), secret=SECRET, now=NOW)
    assert refused.value.problem == "invalid"


def test_a_token_of_another_secret_is_invalid_even_when_expired():
    token = sign(MESSAGE, secret=b"other" * 8, now=NOW, valid_for=timedelta(days=1))
    with pytest.raises(TokenError) as refused:
        verify(token, secret=SECRET, now=NOW + timedelta(days=90))  # the signature first: expiry is not trusted
    assert refused.value.problem == "invalid"


@pytest.mark.parametrize("token", ["", "abc", "x" * 55, "é" * 55, "=" * 55, "A" * 54 + "!"])
def test_what_is_not_a_token_is_malformed_or_invalid_never_an_exception_of_another_kind(token):
    with pytest.raises(TokenError) as refused:
        verify(token, secret=SECRET, now=NOW)
    assert refused.value.problem in ("malformed", "invalid")


def test_the_operator_notice_of_a_disabled_webhook_endpoint_is_not_marketing():
    from lifecycle_messaging.domain.consent import TRANSACTIONAL, purpose_of
    from lifecycle_messaging.domain.webhooks import OPERATOR_NOTICE

    assert purpose_of(OPERATOR_NOTICE) == TRANSACTIONAL
