"""What a browser may establish, as pure rules: ingest's identity verification (`context.userHash`), the default
for records written before `verified` existed, verified carried from touchpoints (and orders) onto transitions,
and the rule on contact addresses that the stage engine's profiles and messaging's contacts follow."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_ingest.domain.touchpoints import InvalidTouchpoint, event_id
from lifecycle_ingest.domain.verification import identity_verified, user_hash, without_user_hash
from lifecycle_shared.events import TouchpointData, sent_with_server_key
from lifecycle_shared.testing import make_cloud_event
from lifecycle_shared.trust import contact_changes_allowed, may_set_contact
from lifecycle_shared.typed_events import data_as
from lifecycle_stage_engine.domain.profiles import Profile
from lifecycle_stage_engine.domain.rules import DEFAULT_RULES
from lifecycle_stage_engine.domain.timeline import State, advance, replay

from tests.support.timeline_touches import T0, order, touch

SECRET = "lc_iv_test-secret"


def test_the_user_hash_is_the_hex_hmac_sha256_of_the_user_id():
    assert user_hash("ann", SECRET) == hmac.new(SECRET.encode(), b"ann", hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("key_kind", "user_id", "given", "secret", "verified"), [
    ("server", "ann", None, None, True),  # the shop's server: verified whatever it carries
    ("server", "ann", "not-a-hash", None, True),
    ("write", "ann", None, SECRET, False),  # no hash: accepted, unverified (Segment's model for analytics)
    ("write", None, "whatever", SECRET, False),  # no userId: nothing to verify
    ("write", "ann", user_hash("ann", SECRET), SECRET, True),
    ("write", "ann", user_hash("ann", SECRET).upper(), SECRET, True),  # hex in either case
])
def test_identity_verified(key_kind, user_id, given, secret, verified):
    assert identity_verified(key_kind=key_kind, user_id=user_id, given_hash=given, secret=secret) is verified


@pytest.mark.parametrize(("given", "secret"), [
    (user_hash("bob", SECRET), SECRET),  # another customer's hash
    (user_hash("ann", "lc_iv_other"), SECRET),  # made with another (an old) secret
    ("", SECRET), (12, SECRET), ("é" * 64, SECRET),
    (user_hash("ann", SECRET), None),  # the source has no secret to check it with
])
def test_a_hash_that_does_not_verify_the_user_id_is_a_403_naming_the_field(given, secret):
    with pytest.raises(InvalidTouchpoint) as refused:
        identity_verified(key_kind="write", user_id="ann", given_hash=given, secret=secret)
    assert (refused.value.status, refused.value.code) == (403, "identity_unverified")
    assert [e["field"] for e in refused.value.errors] == ["context.userHash"]


def test_the_hash_is_not_carried():
    context = {"userHash": "ab", "ip": "1.2.3.4"}
    assert without_user_hash(context) == {"ip": "1.2.3.4"} and "userHash" in context
    plain = {"ip": "1.2.3.4"}
    assert without_user_hash(plain) is plain


def test_a_record_without_verified_is_judged_by_its_event_ids_form():
    data = {"type": "track", "event": "Product Reviewed", "userId": "ann", "messageId": "m-1",
            "timestamp": T0.isoformat(), "receivedAt": T0.isoformat()}
    server = event_id(source="shop", message_id="m-1")
    browser = event_id(source="shop", message_id="m-1", key_kind="write")
    assert (sent_with_server_key(server), sent_with_server_key(browser)) == (True, False)
    assert not sent_with_server_key("no-slash") and not sent_with_server_key("shop+write/a+b/c")
    assert data_as(TouchpointData, make_cloud_event(id=server, data=data)).verified
    assert not data_as(TouchpointData, make_cloud_event(id=browser, data=data)).verified
    # What ingest wrote stands, whatever the id says.
    assert not data_as(TouchpointData, make_cloud_event(id=server, data={**data, "verified": False})).verified


@pytest.mark.parametrize(("current", "new", "verified", "allowed"), [
    (None, "new@x", False, True), ("", "new@x", False, True),  # nothing held yet: anyone may tell it
    ("old@x", "old@x", False, True),  # the same address again changes nothing
    ("old@x", "new@x", False, False),  # never replaced on an unverified word
    ("old@x", "new@x", True, True),
])
def test_may_set_contact(current, new, verified, allowed):
    assert may_set_contact(current, new, verified=verified) is allowed


def test_an_unverified_event_keeps_a_known_users_contact_traits_and_tells_the_rest():
    held = {"email": "ann@x", "firstName": "Ann"}
    told = {"email": "mallory@x", "phone": "+100", "firstName": "Mal"}
    assert contact_changes_allowed(held, told, verified=False, known_user=True) == {"phone": "+100",
                                                                                    "firstName": "Mal"}
    assert contact_changes_allowed(held, told, verified=True, known_user=True) == told
    assert contact_changes_allowed(held, told, verified=False, known_user=False) == told  # an anonymous profile


def _profile(user_id: str | None, traits: dict) -> Profile:
    return Profile(id="p", customer_id=user_id or "anon-1", user_id=user_id, state=State(), traits=traits,
                   first_seen_at=T0, last_seen_at=T0)


def test_a_profile_takes_an_address_it_lacks_but_replaces_one_only_when_verified():
    profile = _profile("ann", {"firstName": "Ann"})
    profile.seen(T0, {"email": "first@x"}, {})
    assert profile.traits == {"firstName": "Ann", "email": "first@x"}
    profile.seen(T0, {"email": "mallory@x"}, {})
    assert profile.traits["email"] == "first@x"
    profile.seen(T0, {"email": "second@x"}, {}, verified=True)
    assert profile.traits["email"] == "second@x"


def test_transitions_carry_verified_from_their_cause_and_drift_from_its_order():
    verified_order = replace(order(1, "o1"), verified=True)
    review = touch("product_reviewed", 3 * 1440, rating=5)
    _, history = replay([replace(order(0, "o0"), verified=True), verified_order, review], DEFAULT_RULES)
    assert [(t.to_stage, t.verified) for t in history] == [
        ("purchase", True), ("retention", True), ("loyalty", False)]
    state, _ = replay([verified_order], DEFAULT_RULES)
    _, drifted = advance(state, T0 + timedelta(days=400), DEFAULT_RULES)
    assert drifted and all(t.verified for t in drifted)
    _, unverified_drift = advance(replay([order(1, "o1")], DEFAULT_RULES)[0], datetime(2030, 1, 1, tzinfo=UTC),
                                  DEFAULT_RULES)
    assert unverified_drift and not any(t.verified for t in unverified_drift)
