"""The unsubscribe link's token: signed and expiring, naming a message and nothing personal. Pure.

A token is `base64url(version ‖ message id (16 bytes) ‖ expiry (unix seconds, 8 bytes) ‖ HMAC-SHA256 of
those, first 16 bytes)`, 55 characters. It names the message whose link it is - never the customer id or
the address: the service looks up whom that message went to. The clock is a parameter (`now`).

Why HMAC from the standard library rather than itsdangerous: a few lines, and the time is ours to pass -
itsdangerous' TimestampSigner reads `time.time()` when it signs and when it checks `max_age`, which the
house rule (no clock in `domain/`) and the tests (a controllable clock) cannot use without subclassing.

`verify` checks in this order and says what is wrong: malformed (not a token), invalid (the signature does
not match: tampered, or signed with another secret), expired (a genuine token past its expiry). The expiry
is read only once the signature holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

VERSION = 1
_BODY = struct.Struct(">B16sq")
_MAC_BYTES = 16
TOKEN_LENGTH = 55  # base64url of 41 bytes, unpadded


class TokenError(ValueError):
    """Why a token is refused: `problem` is `malformed`, `invalid` or `expired`."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True)
class Unsubscribe:
    """What a valid token says: the message whose link it is, and until when it works."""

    message_id: str
    expires_at: datetime


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, b"lifecycle.unsubscribe\x00" + body, hashlib.sha256).digest()[:_MAC_BYTES]


def sign(message_id: str, *, secret: bytes, now: datetime, valid_for: timedelta) -> str:
    expires = int((now + valid_for).timestamp())
    body = _BODY.pack(VERSION, uuid.UUID(message_id).bytes, expires)
    return base64.urlsafe_b64encode(body + _mac(secret, body)).rstrip(b"=").decode()


def verify(token: str, *, secret: bytes, now: datetime) -> Unsubscribe:
    """The message a token names; raises TokenError naming the problem."""
    if len(token) != TOKEN_LENGTH or not token.isascii():
        raise TokenError("malformed", "not an unsubscribe token")
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "not an unsubscribe token") from None
    body, mac = raw[:_BODY.size], raw[_BODY.size:]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, body)):
        raise TokenError("invalid", "the unsubscribe link is not valid (altered or not ours)")
    version, message, expires = _BODY.unpack(body)
    if version != VERSION:
        raise TokenError("invalid", "the unsubscribe link is not valid (unknown version)")
    expires_at = datetime.fromtimestamp(expires, UTC)
    if now >= expires_at:
        raise TokenError("expired", "the unsubscribe link has expired")
    return Unsubscribe(message_id=str(uuid.UUID(bytes=message)), expires_at=expires_at)


def link(base_url: str, token: str) -> str:
    """The one-click link: `<base>/v1/unsubscribe/<token>`."""
    return f"{base_url.rstrip('/')}/v1/unsubscribe/{token}"
