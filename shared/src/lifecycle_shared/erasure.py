"""GDPR erasure's pure parts (docs/erasure.md): the keyed hash by which `customer.erasure_requested` names a
customer's ids without carrying them, and the erasure id, stable per customer so a repeat is recognised."""

from __future__ import annotations

import hashlib
import hmac
import uuid

from pydantic import SecretStr

# Fixed namespace for erasure ids: the same customer (internal profile id) always gets the same erasure id.
ERASURE_ID_NAMESPACE = uuid.UUID("0b7d6a2e-9c41-4f53-8e1a-5d2c7f3b9a64")


def id_hash(pepper: bytes, customer_id: str) -> str:
    """HMAC-SHA256 of one id (userId, anonymousId, customer key) under the deployment's erasure pepper, lowercase
    hex. Without the pepper it cannot be reversed or tested against guessed ids."""
    if not pepper:
        raise ValueError("the erasure pepper must not be empty")
    return hmac.new(pepper, customer_id.encode(), hashlib.sha256).hexdigest()


def id_hashes(pepper: bytes, customer_ids: list[str] | set[str]) -> list[str]:
    """The hashes of every id, sorted and deduplicated (so the same customer yields the same event data)."""
    return sorted({id_hash(pepper, customer_id) for customer_id in customer_ids})


def erasure_id(internal_profile_id: str) -> str:
    """The erasure id of a customer, from their opaque internal profile id (not personal data)."""
    return str(uuid.uuid5(ERASURE_ID_NAMESPACE, internal_profile_id))


def pepper_of(setting: SecretStr | None) -> bytes | None:
    """The pepper as the hashes take it, from a service's `erasure_pepper` setting; None when unset or empty."""
    value = setting.get_secret_value() if setting is not None else ""
    return value.encode() if value else None
