"""Webhooks as pure rules: Standard Webhooks signing, the retry schedule, which addresses a delivery may
reach, which endpoints an event goes to and the payload it carries. No I/O, no clock: `now` and the
random draws are parameters.

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24  # within the spec's 24-64 bytes

# What a subscriber may ask for: the stage engine's announcements that messaging reads.
STAGE_CHANGED = "lifecycle.stage_changed"
IDENTITY_MERGED = "identity.merged"
# Messaging's own, read from the message log by `workers.webhooks.message_events`: an email went out
# (`sent_at`), was not sent on purpose (`suppressed`, with its reason), or could not be sent (`failed`).
MESSAGE_SENT = "message.sent"
MESSAGE_SUPPRESSED = "message.suppressed"
MESSAGE_FAILED = "message.failed"
MESSAGE_EVENTS: tuple[str, ...] = (MESSAGE_SENT, MESSAGE_SUPPRESSED, MESSAGE_FAILED)
# An address's marketing consent became `unsubscribed` (read from the consent log, `consent_changes`): about
# a person, not a message, so it has no stage and the stage filter does not apply to it.
MESSAGE_UNSUBSCRIBED = "message.unsubscribed"
# Messaging's own events, each read from its log with a cursor of its own (`workers.webhooks.announce_messages`).
LOGGED_EVENTS: tuple[str, ...] = (*MESSAGE_EVENTS, MESSAGE_UNSUBSCRIBED)
# Loyalty's announcements (loyalty-events.v1): messaging handles none of them, it only fans them out.
REWARD_REDEEMED = "loyalty.reward_redeemed"
DEBT_RECORDED = "loyalty.debt_recorded"
TIER_CHANGED = "loyalty.tier_changed"
POINTS_EXPIRING = "loyalty.points_expiring"
LOYALTY_EVENTS: tuple[str, ...] = (REWARD_REDEEMED, DEBT_RECORDED, TIER_CHANGED, POINTS_EXPIRING)
# The webhooks' own: an endpoint was disabled (410, or failing for 5 days); told to the other endpoints.
ENDPOINT_DISABLED = "webhook.endpoint_disabled"
EVENT_TYPES: tuple[str, ...] = (STAGE_CHANGED, IDENTITY_MERGED, *LOYALTY_EVENTS, *LOGGED_EVENTS, ENDPOINT_DISABLED)

# The retry schedule (Standard Webhooks / Svix): the delay before each attempt, the first immediate.
# Eight attempts over about 27.6 hours; after the last one fails the delivery is given up (`failed`).
SCHEDULE_S: tuple[float, ...] = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(SCHEDULE_S)
JITTER = 0.1  # each delay is drawn from [d, d * 1.1): retries of a burst do not all arrive at once
MAX_RETRY_AFTER_S = 24 * 3600  # a receiver's Retry-After is honoured up to a day
FAILING_DISABLES_AFTER = timedelta(days=5)

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_URL_LENGTH = 2000

# The namespace of webhook-ids: uuid5 of (endpoint, event), so a retry, a redelivery of the event and
# a replay all carry the same id (the receiver's idempotency key).
WEBHOOK_ID_NAMESPACE = uuid.UUID("1d0f8a6e-5b7c-4c52-8a0e-7f4a0f2f7c35")


def new_secret(random_bytes: bytes) -> str:
    """`whsec_` + base64 of the random bytes (the caller draws them: `secrets.token_bytes(SECRET_BYTES)`)."""
    if not 24 <= len(random_bytes) <= 64:
        raise ValueError("a webhook secret has 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(random_bytes).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for (its base64-decoded bytes)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    digest = hmac.new(secret_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret in force, space-separated (a rotation)."""
    return " ".join(sign(secret, webhook_id, timestamp, body) for secret in secrets)


def secrets_in_force(secret: str, previous: str | None, previous_until: datetime | None, now: datetime) -> list[str]:
    """The current secret, and the one it replaced while the rotation's overlap lasts."""
    if previous and previous_until is not None and now < previous_until:
        return [secret, previous]
    return [secret]


def webhook_id(endpoint_id: str, event_id: str) -> str:
    return "msg_" + uuid.uuid5(WEBHOOK_ID_NAMESPACE, f"{endpoint_id}|{event_id}").hex


# ---- the retry schedule -------------------------------------------------------------------------------

def retry_delay_s(attempts: int, draw: float) -> float | None:
    """Seconds to wait after `attempts` failed attempts, before the next one; None: give up.
    `draw` in [0, 1) spreads the delay over [d, d * (1 + JITTER))."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return SCHEDULE_S[max(attempts, 0)] * (1 + JITTER * draw)


def next_attempt(attempts: int, now: datetime, draw: float, retry_after_s: float | None = None) -> datetime | None:
    """When to try again after `attempts` failed attempts (None: give up). A receiver's Retry-After
    (429, 503) pushes the next attempt back, never forward, up to MAX_RETRY_AFTER_S."""
    delay = retry_delay_s(attempts, draw)
    if delay is None:
        return None
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return now + timedelta(seconds=delay)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER_S))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min((when - now).total_seconds(), MAX_RETRY_AFTER_S))


@dataclass(frozen=True)
class Verdict:
    """What an attempt's outcome means: delivered, retry (maybe not before `retry_after_s`), or the
    endpoint is gone for good (410)."""

    delivered: bool
    gone: bool = False
    retry_after_s: float | None = None


def judge(status: int | None, retry_after: str | None, now: datetime) -> Verdict:
    """`status` None: no answer (refused, timed out, blocked address)."""
    if status is not None and 200 <= status < 300:
        return Verdict(True)
    if status == 410:
        return Verdict(False, gone=True)
    if status in (429, 503):
        return Verdict(False, retry_after_s=parse_retry_after(retry_after, now))
    return Verdict(False)


def disables_endpoint(failing_since: datetime | None, now: datetime) -> bool:
    """An endpoint that has failed every attempt for FAILING_DISABLES_AFTER is disabled."""
    return failing_since is not None and now - failing_since >= FAILING_DISABLES_AFTER


# ---- where a delivery may go ---------------------------------------------------------------------------

def url_problem(url: str, *, allow_insecure: bool) -> str | None:
    """Why an endpoint URL cannot be registered (None: it can). Names set at connect time are checked
    again there (`address_refusal`): this is the early, friendly answer."""
    if len(url) > MAX_URL_LENGTH:
        return f"at most {MAX_URL_LENGTH} characters"
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        return "must be an ASCII URL without spaces or control characters (IDNA-encode the host)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("https", "http"):
        return "must be an https:// URL"
    if parts.scheme == "http" and not allow_insecure:
        return "must be an https:// URL (plain HTTP is allowed in development only)"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "may not carry credentials (user:password@)"
    if parts.fragment:
        return "may not carry a fragment (#...)"
    if port == 0:
        return "has port 0"
    if not allow_insecure:
        if parts.hostname.rstrip(".").lower() == "localhost" or parts.hostname.endswith(".localhost"):
            return "may not point at this machine (localhost)"
        literal = ip_literal(parts.hostname)
        if literal is not None and (refusal := address_refusal(literal, allow_private=False)):
            return f"may not point at {refusal}"
    return None


def ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def address_refusal(address: str, *, allow_private: bool) -> str | None:
    """Why a delivery may not connect to this IP address (None: it may). Outside development only
    public unicast addresses: no loopback, private, link-local (cloud metadata, 169.254.169.254), shared,
    multicast, reserved or unspecified address, also when written as IPv4-mapped IPv6."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "an address that is not an IP address"
    if allow_private:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or not ip.is_global:
        return "an address that is not public"
    return None


# ---- which endpoints an event goes to, and what it carries ----------------------------------------------

@dataclass(frozen=True)
class Subscription:
    endpoint_id: str
    event_types: tuple[str, ...]
    stages: tuple[str, ...] | None  # only moves to (messages for) these stages; None: all


def matches(subscription: Subscription, event_type: str, data: Mapping[str, Any]) -> bool:
    if event_type not in subscription.event_types:
        return False
    if subscription.stages is not None and event_type in (STAGE_CHANGED, *MESSAGE_EVENTS):
        return data.get("to_stage" if event_type == STAGE_CHANGED else "stage") in subscription.stages
    return True


# What each message event tells beyond which message it is, for whom and why (never its text nor the
# address; not a failure's error either: an SMTP server's answer may quote the address).
_MESSAGE_FIELDS = ("customer_id", "user_id", "template", "stage", "channel", "cause_event_id")
_MESSAGE_EVENT_FIELDS = {MESSAGE_SENT: {"sent_at": "sent_at"},
                         MESSAGE_SUPPRESSED: {"reason": "suppressed_reason", "suppressed_at": "status_changed_at"},
                         MESSAGE_FAILED: {"attempts": "attempts", "failed_at": "status_changed_at"}}


def message_event_data(event_type: str, message: Mapping[str, Any]) -> dict[str, Any]:
    """The `data` of a message event, from the message's row (`id` and the columns named above)."""
    extra = {name: message[column] for name, column in _MESSAGE_EVENT_FIELDS[event_type].items()}
    return {"message_id": message["id"]} | {key: message[key] for key in _MESSAGE_FIELDS} | extra


def message_event_id(event_type: str, message_id: str) -> str:
    """One event of each type per message: `message.sent:<id>` (a webhook-id per endpoint and message)."""
    return f"{event_type}:{message_id}"


def unsubscribed_data(change: Mapping[str, Any]) -> dict[str, Any]:
    """The `data` of `message.unsubscribed`, from a row of the consent log: whose (the customer id, when the
    change knew one), how (`source`: link, api, touchpoint, provider), from what and when. Never the address."""
    return {"customer_id": change["customer_id"], "channel": change["channel"], "purpose": change["purpose"],
            "source": change["source"], "previous_state": change["previous_state"],
            "unsubscribed_at": change["at"]}


def unsubscribed_event_id(seq: int) -> str:
    """One event per change of the consent log: `message.unsubscribed:<seq>`."""
    return f"{MESSAGE_UNSUBSCRIBED}:{seq}"


# ---- an endpoint disabled: the event to the other endpoints, the notice to the operator --------------------

# The operator's notice is a message of messaging's own email queue under this key and template: it is about
# no customer's transition (no `event_time`), so it is never judged stale nor superseded, and it is not one of
# the message events a webhook announces.
OPERATOR_KEY = "lifecycle:operator"
OPERATOR_NOTICE = "webhook_endpoint_disabled"
OPERATOR_NOTICE_NAMESPACE = uuid.UUID("8c6f3f0e-2a4b-4e7d-9d1c-5b2e6a7f4c10")


def url_host(url: str) -> str:
    """The host of an endpoint's URL, all that is told of it (its path and query may carry a token)."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def endpoint_disabled_data(endpoint_id: str, url: str, *, reason: str, why: str, disabled_at: datetime,
                           failing_since: datetime | None) -> dict[str, Any]:
    """What `webhook.endpoint_disabled` tells: which endpoint (id, URL host), why (`gone`: it answered 410;
    `failing`: every attempt failed for 5 days) in words, and since when it failed."""
    return {"endpoint_id": endpoint_id, "url_host": url_host(url), "why": why, "reason": reason,
            "disabled_at": disabled_at, "failing_since": failing_since}


def endpoint_disabled_event_id(endpoint_id: str, disabled_at: datetime) -> str:
    """One event per disabling (an endpoint resumed and disabled again is disabled anew)."""
    return f"{ENDPOINT_DISABLED}:{endpoint_id}:{_iso(disabled_at)}"


def operator_notice(data: Mapping[str, Any], *, description: str, to: str) -> dict[str, Any]:
    """The operator's email about a disabled endpoint, as a queued message row (plain text)."""
    event_id = endpoint_disabled_event_id(data["endpoint_id"], data["disabled_at"])
    named = f" ({description})" if description else ""
    text = (f"Webhook endpoint {data['endpoint_id']}{named} at {data['url_host']} was disabled at "
            f"{_iso(data['disabled_at'])}: {data['reason']}.\n\n"
            "Nothing more is queued for it. Once the receiver is fixed, resume it "
            f"(POST /v1/admin/webhooks/{data['endpoint_id']}/resume) and replay what it missed "
            f"(POST /v1/admin/webhooks/{data['endpoint_id']}/replay).\n")
    return {"id": str(uuid.uuid5(OPERATOR_NOTICE_NAMESPACE, event_id)), "customer_id": OPERATOR_KEY,
            "linked_ids": [], "user_id": None, "template": OPERATOR_NOTICE, "stage": "operator",
            "cause_event_id": event_id, "channel": "email", "recipient": to,
            "subject": f"Webhook endpoint disabled: {data['url_host']} ({data['endpoint_id']})", "body": text,
            "status": "queued", "suppressed_reason": None}


def subscribers(subscriptions: Iterable[Subscription], event_type: str, data: Mapping[str, Any]) -> list[str]:
    return [s.endpoint_id for s in subscriptions if matches(s, event_type, data)]


# Fields dropped, in this order, from a payload over MAX_PAYLOAD_BYTES (then only the core is kept).
_TRIMMABLE = ("traits", "anonymous_ids", "absorbed_ids", "cause_event_ids", "lot_ids")
_CORE = ("customer_id", "user_id", "from_stage", "to_stage", "reason", "survivor_id", "absorbed_id",
         "event_time", "processed_at")


def payload(event_type: str, event_time: datetime, data: Mapping[str, Any],
            limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The JSON body `{type, timestamp, data}`: `timestamp` is when the event happened, so a receiver can
    order what retries deliver out of order. Over `limit` bytes, the bulky fields are dropped (named in
    `data.truncated`), then all but the core fields."""
    body = dict(data)
    encoded = _encode(event_type, event_time, body)
    dropped: list[str] = []
    for name in _TRIMMABLE:
        if len(encoded) <= limit:
            return encoded
        if name in body:
            body.pop(name)
            dropped.append(name)
            encoded = _encode(event_type, event_time, {**body, "truncated": dropped})
    if len(encoded) > limit:
        core = {k: v for k, v in body.items() if k in _CORE and (not isinstance(v, str) or len(v) <= 256)}
        encoded = _encode(event_type, event_time, {**core, "truncated": True})
    return encoded


def _encode(event_type: str, event_time: datetime, data: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "timestamp": _iso(event_time), "data": data},
                      separators=(",", ":"), ensure_ascii=False, default=_json_default, allow_nan=False).encode()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return _iso(value)
    return str(value)
