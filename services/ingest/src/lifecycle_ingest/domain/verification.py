"""Identity verification: whether an event's userId is established. Pure.

A server key is kept on the shop's server: what it sends is verified. A write key sits in every browser, so
an event sent with it is verified only when it carries `context.userHash`, the hex HMAC-SHA256 of its userId
keyed with the source's identity-verification secret (as Intercom's identity verification does): the shop's
server computes it for the signed-in customer and hands it to the page, which cannot compute one for anybody
else. A hash that does not match its userId is refused (403 `identity_unverified`); an event without one is
accepted, unverified (Segment's model is kept for analytics); an event without a userId has nothing to verify.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from lifecycle_ingest.domain.touchpoints import InvalidTouchpoint

USER_HASH = "userHash"  # in `context`: where analytics.js middleware and the other libraries can put it
USER_HASH_FIELD = f"context.{USER_HASH}"


def user_hash(user_id: str, secret: str) -> str:
    """What the shop's server computes for a signed-in customer: hex HMAC-SHA256 of the userId."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identity_verified(*, key_kind: str, user_id: str | None, given_hash: Any, secret: str | None) -> bool:
    """Whether the event's identity is established; `InvalidTouchpoint` (403 identity_unverified, naming
    `context.userHash`) when it carries a hash that does not verify its userId."""
    if key_kind == "server":
        return True
    if given_hash is None or user_id is None:
        return False
    if secret is None:
        raise _unverified("this source has no identity-verification secret to check it with")
    if not (isinstance(given_hash, str) and given_hash.isascii()
            and hmac.compare_digest(given_hash.lower(), user_hash(user_id, secret))):
        raise _unverified("does not match the userId (expected the hex HMAC-SHA256 of the userId keyed with the "
                          "source's identity-verification secret)")
    return True


def _unverified(message: str) -> InvalidTouchpoint:
    return InvalidTouchpoint([{"field": USER_HASH_FIELD, "message": message}], status=403, code="identity_unverified")


def without_user_hash(context: dict[str, Any]) -> dict[str, Any]:
    """The context as carried: the hash is a credential for its userId, not a fact about the event."""
    return {name: value for name, value in context.items() if name != USER_HASH} if USER_HASH in context else context
