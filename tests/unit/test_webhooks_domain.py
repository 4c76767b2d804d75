"""Webhooks' pure rules: signatures as the `standardwebhooks` library verifies them, the retry schedule on a
clock of our own, Retry-After, which addresses a delivery may reach, bounded payloads."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_messaging.domain import webhooks as wh
from lifecycle_shared.events import DEBT_RECORDED_TYPE, POINTS_EXPIRING_TYPE, REWARD_REDEEMED_TYPE, TIER_CHANGED_TYPE
from standardwebhooks import Webhook, WebhookVerificationError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def secret(fill: int) -> str:
    return wh.new_secret(bytes([fill]) * wh.SECRET_BYTES)


def test_a_secret_is_whsec_and_base64_of_24_to_64_bytes():
    made = secret(7)
    assert made.startswith("whsec_") and base64.b64decode(made[6:]) == bytes([7]) * 24
    with pytest.raises(ValueError):
        wh.new_secret(b"short")


def test_the_library_verifies_our_signature_and_refuses_a_changed_body_or_id():
    key, body, msg = secret(1), b'{"type":"lifecycle.stage_changed","data":{"x":"\xc3\xa9"}}', "msg_1"
    stamp = int(datetime.now(UTC).timestamp())  # the library checks the timestamp against its own clock
    headers = {"webhook-id": msg, "webhook-timestamp": str(stamp),
               "webhook-signature": wh.signature_header([key], msg, stamp, body)}
    assert Webhook(key).verify(body, headers)["data"] == {"x": "é"}
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(body, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret(2)).verify(body, headers)


def test_during_a_rotation_both_secrets_sign_and_each_verifies_alone():
    new, old, body = secret(3), secret(4), b"{}"
    in_force = wh.secrets_in_force(new, old, NOW + timedelta(hours=1), NOW)
    assert in_force == [new, old]
    stamp = int(datetime.now(UTC).timestamp())
    header = wh.signature_header(in_force, "msg_r", stamp, body)
    assert len(header.split(" ")) == 2 and all(part.startswith("v1,") for part in header.split(" "))
    headers = {"webhook-id": "msg_r", "webhook-timestamp": str(stamp), "webhook-signature": header}
    for key in (new, old):
        Webhook(key).verify(body, headers)
    # After the overlap only the new one signs.
    assert wh.secrets_in_force(new, old, NOW + timedelta(hours=1), NOW + timedelta(hours=1)) == [new]
    assert wh.secrets_in_force(new, None, None, NOW) == [new]


def test_the_schedule_is_immediately_5s_5min_30min_2h_5h_10h_10h_then_give_up():
    assert wh.SCHEDULE_S == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    at, moments = NOW, [NOW]
    for attempts in range(1, wh.MAX_ATTEMPTS):
        nxt = wh.next_attempt(attempts, at, draw=0.0)
        assert nxt is not None
        moments.append(nxt)
        at = nxt
    assert [(b - a).total_seconds() for a, b in zip(moments, moments[1:], strict=False)] == list(wh.SCHEDULE_S[1:])
    assert timedelta(hours=27) < moments[-1] - NOW < timedelta(hours=28)
    assert wh.next_attempt(wh.MAX_ATTEMPTS, at, draw=0.0) is None


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_jitter_spreads_each_delay_over_up_to_a_tenth_more(draw):
    for attempts, delay in enumerate(wh.SCHEDULE_S[1:], start=1):
        got = wh.retry_delay_s(attempts, draw)
        assert got is not None and delay <= got < delay * 1.1 + 1e-9


def test_retry_after_pushes_the_next_attempt_back_never_forward_and_at_most_a_day():
    assert wh.next_attempt(1, NOW, 0.0, retry_after_s=120) == NOW + timedelta(seconds=120)
    assert wh.next_attempt(3, NOW, 0.0, retry_after_s=1) == NOW + timedelta(minutes=30)
    assert wh.next_attempt(1, NOW, 0.0, retry_after_s=10**9) == NOW + timedelta(days=1)
    assert wh.parse_retry_after("7", NOW) == 7
    assert wh.parse_retry_after("Mon, 01 Jun 2026 12:01:00 GMT", NOW) == 60
    assert wh.parse_retry_after("soon", NOW) is None and wh.parse_retry_after(None, NOW) is None


def test_what_an_answer_means():
    assert wh.judge(200, None, NOW).delivered and wh.judge(204, None, NOW).delivered
    assert wh.judge(410, None, NOW).gone
    assert wh.judge(429, "30", NOW) == wh.Verdict(False, retry_after_s=30)
    assert wh.judge(503, "30", NOW).retry_after_s == 30
    assert wh.judge(500, "30", NOW).retry_after_s is None  # Retry-After is only 429's and 503's
    assert not wh.judge(302, None, NOW).delivered  # redirects are not followed: a failure
    assert not wh.judge(None, None, NOW).delivered


def test_an_endpoint_failing_for_five_days_is_disabled():
    assert not wh.disables_endpoint(None, NOW)
    assert not wh.disables_endpoint(NOW - timedelta(days=4, hours=23), NOW)
    assert wh.disables_endpoint(NOW - timedelta(days=5), NOW)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "192.168.1.1", "172.16.0.1",
                                     "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1", "fd00:ec2::254", "fe80::1",
                                     "224.0.0.1", "240.0.0.1"])
def test_production_refuses_loopback_private_link_local_and_metadata_addresses(address):
    assert wh.address_refusal(address, allow_private=False) is not None
    assert wh.address_refusal(address, allow_private=True) is None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "1.1.1.1"])
def test_public_addresses_are_allowed(address):
    assert wh.address_refusal(address, allow_private=False) is None


@pytest.mark.parametrize(("url", "problem"), [
    ("http://example.com/hook", "https"), ("ftp://example.com", "https"), ("https://", "host"),
    ("https://user:pw@example.com/", "credentials"), ("https://127.0.0.1/", "loopback"),
    ("https://[::1]:8443/", "loopback"), ("https://169.254.169.254/latest", "link-local"),
    ("https://10.0.0.1/", "private"), ("https://localhost/", "localhost"), ("https://exa mple.com", "spaces"),
    ("https://example.com:99999/", "valid"), ("https://example.com/#x", "fragment"),
    ("https://é.example/", "ASCII"), ("https://example.com/" + "a" * 2000, "2000")])
def test_a_url_production_cannot_use_is_refused_naming_why(url, problem):
    found = wh.url_problem(url, allow_insecure=False)
    assert found is not None and problem in found


def test_development_allows_http_and_loopback_but_still_not_junk():
    assert wh.url_problem("http://127.0.0.1:8080/hook", allow_insecure=True) is None
    assert wh.url_problem("https://hooks.example.com/in?token=x", allow_insecure=False) is None
    assert wh.url_problem("gopher://127.0.0.1/", allow_insecure=True) is not None


def test_a_webhook_id_is_stable_per_endpoint_and_event():
    assert wh.webhook_id("ep_1", "ev_1") == wh.webhook_id("ep_1", "ev_1")
    assert len({wh.webhook_id("ep_1", "ev_1"), wh.webhook_id("ep_2", "ev_1"), wh.webhook_id("ep_1", "ev_2")}) == 3


def test_the_payload_carries_type_event_time_and_data_and_stays_bounded():
    data = {"customer_id": "ann", "from_stage": None, "to_stage": "purchase", "event_time": "2026-05-01T00:00:00Z",
            "traits": {"note": "x" * 100_000}, "cause_event_ids": ["c"] * 10}
    body = json.loads(wh.payload("lifecycle.stage_changed", NOW, data))
    assert body["type"] == "lifecycle.stage_changed" and body["timestamp"] == "2026-06-01T12:00:00Z"
    assert body["data"]["to_stage"] == "purchase" and "traits" not in body["data"]
    assert body["data"]["truncated"] == ["traits"]
    small = json.loads(wh.payload("identity.merged", NOW, {"survivor_id": "u"}))
    assert small == {"type": "identity.merged", "timestamp": "2026-06-01T12:00:00Z", "data": {"survivor_id": "u"}}
    huge = {"customer_id": "c" * 100_000, "to_stage": "awareness"}
    assert len(wh.payload("lifecycle.stage_changed", NOW, huge)) <= wh.MAX_PAYLOAD_BYTES


def test_message_events_tell_which_message_and_why_never_the_address_the_text_or_the_error():
    row = {"id": "m1", "customer_id": "ann", "user_id": "ann", "template": "welcome", "stage": "awareness",
           "channel": "email", "cause_event_id": "e1", "sent_at": None, "status_changed_at": NOW,
           "suppressed_reason": "stale", "attempts": 3, "recipient": "ann@example.com", "body": "Hi",
           "last_error": "550 <ann@example.com> unknown"}
    common = {"message_id": "m1", "customer_id": "ann", "user_id": "ann", "template": "welcome",
              "stage": "awareness", "channel": "email", "cause_event_id": "e1"}
    assert wh.message_event_data(wh.MESSAGE_SUPPRESSED, row) == common | {"reason": "stale", "suppressed_at": NOW}
    assert wh.message_event_data(wh.MESSAGE_FAILED, row) == common | {"attempts": 3, "failed_at": NOW}
    assert wh.message_event_data(wh.MESSAGE_SENT, row | {"sent_at": NOW}) == common | {"sent_at": NOW}
    assert wh.message_event_id(wh.MESSAGE_FAILED, "m1") != wh.message_event_id(wh.MESSAGE_SUPPRESSED, "m1")
    buyers = wh.Subscription("ep", wh.MESSAGE_EVENTS, ("purchase",))
    for event_type in wh.MESSAGE_EVENTS:  # the stage filter applies to every message event
        assert not wh.matches(buyers, event_type, common)
        assert wh.matches(buyers, event_type, common | {"stage": "purchase"})


def test_an_unsubscribe_tells_whose_how_and_when_never_the_address_and_no_stage_filter_holds_it_back():
    change = {"seq": 41, "address": "ann@example.com", "channel": "email", "purpose": "marketing",
              "state": "unsubscribed", "previous_state": "subscribed", "source": "link", "reference": "m1",
              "customer_id": "ann", "at": NOW}
    data = wh.unsubscribed_data(change)
    assert data == {"customer_id": "ann", "channel": "email", "purpose": "marketing", "source": "link",
                    "previous_state": "subscribed", "unsubscribed_at": NOW}
    assert "ann@example.com" not in wh.payload(wh.MESSAGE_UNSUBSCRIBED, NOW, data).decode()
    assert wh.unsubscribed_event_id(41) != wh.unsubscribed_event_id(42)
    buyers = wh.Subscription("ep", (wh.MESSAGE_UNSUBSCRIBED, *wh.LOYALTY_EVENTS), ("purchase",))
    for event_type in (wh.MESSAGE_UNSUBSCRIBED, *wh.LOYALTY_EVENTS):  # about no stage: the filter does not apply
        assert wh.matches(buyers, event_type, {"customer_id": "ann"})
    assert not wh.matches(buyers, wh.MESSAGE_SENT, {"customer_id": "ann", "stage": "purchase"})  # not asked for


def test_the_loyalty_types_are_loyaltys_and_a_long_list_of_lots_is_trimmed_first():
    assert set(wh.LOYALTY_EVENTS) == {REWARD_REDEEMED_TYPE, DEBT_RECORDED_TYPE, TIER_CHANGED_TYPE,
                                      POINTS_EXPIRING_TYPE}
    assert set(wh.LOYALTY_EVENTS) <= set(wh.EVENT_TYPES) and wh.MESSAGE_UNSUBSCRIBED in wh.EVENT_TYPES
    data = {"customer_id": "ann", "points": 120, "expires_at": NOW, "lot_ids": [f"lot-{n:06d}" for n in range(9000)],
            "warned_at": NOW}
    body = json.loads(wh.payload(wh.POINTS_EXPIRING, NOW, data))
    assert body["data"]["truncated"] == ["lot_ids"] and body["data"]["points"] == 120


def test_a_disabled_endpoint_is_told_by_id_host_and_reason_never_the_rest_of_its_url():
    url = "https://crm.example.com:8443/hooks/lifecycle?token=s3cret"
    data = wh.endpoint_disabled_data("ep_1", url, reason="the endpoint answered 410 Gone", why="gone",
                                     disabled_at=NOW, failing_since=None)
    assert data == {"endpoint_id": "ep_1", "url_host": "crm.example.com", "why": "gone",
                    "reason": "the endpoint answered 410 Gone", "disabled_at": NOW, "failing_since": None}
    assert wh.url_host("not a url://[") == ""
    notice = wh.operator_notice(data, description="CRM stage sync", to="ops@example.com")
    assert notice["recipient"] == "ops@example.com" and notice["status"] == "queued"
    assert notice["customer_id"] == wh.OPERATOR_KEY and notice["template"] == wh.OPERATOR_NOTICE
    assert "event_time" not in notice  # about no transition: never judged stale or superseded
    assert all(part in notice["body"] for part in ("ep_1", "crm.example.com", "CRM stage sync", "410 Gone"))
    assert "s3cret" not in str(notice) and "/hooks" not in str(notice)
    again = wh.operator_notice(data | {"disabled_at": NOW + timedelta(days=1)}, description="", to="ops@example.com")
    assert again["id"] != notice["id"] and again["cause_event_id"] != notice["cause_event_id"]  # disabled anew
    assert wh.operator_notice(data, description="CRM stage sync", to="ops@example.com") == notice  # idempotent
