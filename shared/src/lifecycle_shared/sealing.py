"""Crypto-shredding of the topics (docs/erasure.md): a record's personal data sealed under its customer's data key.

A sealed record is still a structured-mode CloudEvent: `id`, `source`, `type`, `time` (and `digest`) stay readable,
`subject` and the Kafka key become the data key's id (an opaque uuid: same customer id, same key, same partition),
the extension attribute `sealed` names the algorithm, and `data` is `{"ciphertext": base64(nonce || AES-256-GCM
of {"subject": <customer key>, "data": <data>})}` with the event id as associated data (a ciphertext moved onto
another event does not open). Erasure destroys the customer's keys (ingest's `subject_keys`): what stays on the
topics is ciphertext nobody can read.

Pure: no I/O. `lifecycle_shared.keyring` fetches the keys; ingest and the outbox relay seal, the consumer runner
opens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lifecycle_shared.errors import PermanentError
from lifecycle_shared.events import ERASURE_REQUESTED_TYPE, CloudEvent

SEALED_ATTRIBUTE = "sealed"
ALGORITHM = "a256gcm"
KEY_BYTES = 32
NONCE_BYTES = 12
# Events that carry no personal data stay in clear: the erasure itself names ids only by keyed hashes, and every
# service (ingest included, which holds the keys) must read it.
UNSEALED_TYPES = frozenset({ERASURE_REQUESTED_TYPE})
# What the key API's bearer token is derived from (with the deployment's pepper, shared by the four services).
KEYS_TOKEN_CONTEXT = b"lifecycle-keys-v1"


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def keys_token(pepper: bytes) -> str:
    """The bearer token of ingest's key API: derived from the pepper every service already shares, so no
    other secret is handed around (and a storefront's read token cannot fetch keys)."""
    return hmac.new(pepper, KEYS_TOKEN_CONTEXT, hashlib.sha256).hexdigest()


def is_sealed(envelope: dict[str, Any] | CloudEvent) -> bool:
    extra = envelope if isinstance(envelope, dict) else (envelope.model_extra or {})
    return extra.get(SEALED_ATTRIBUTE) is not None


def seal_parts(head: bytes, event_id: str, subject: str, data: bytes, *, key_id: str, key: bytes) -> bytes:
    """A sealed CloudEvent's bytes from its parts: `head`, the envelope without `subject` and `data` as a JSON
    object; its id; the customer key; and the data as JSON."""
    plain = b"".join((b'{"subject":', json.dumps(subject).encode(), b',"data":', data, b"}"))
    return seal_plain(head, event_id, plain, key_id_json=json.dumps(key_id).encode(), aead=AESGCM(key),
                      nonce=os.urandom(NONCE_BYTES))


def seal_plain(head: bytes, event_id: str, plain: bytes, *, key_id_json: bytes, aead: AESGCM, nonce: bytes) -> bytes:
    """A sealed CloudEvent's bytes from `head` (as in `seal_parts`), its id and `plain`, the JSON object
    `{"subject": <customer key>, "data": <data>}`, under `aead` (the key's AESGCM) with a fresh random `nonce`
    of NONCE_BYTES: how ingest seals a request's records (the key id's JSON, the AESGCM and the nonces made
    once per key or per request, not per record)."""
    sealed = binascii.b2a_base64(nonce + aead.encrypt(nonce, plain, event_id.encode()), newline=False)
    return b"".join((head[:-1], b',"subject":', key_id_json, _SEALED_DATA, sealed, b'"}}'))


_SEALED_DATA = b',"' + SEALED_ATTRIBUTE.encode() + b'":"' + ALGORITHM.encode() + b'","data":{"ciphertext":"'


def seal_value(value: bytes, *, key_id: str, key: bytes) -> bytes:
    """A clear CloudEvent's bytes, sealed (the outbox relay's path)."""
    envelope = json.loads(value)
    subject, data = envelope.pop("subject"), envelope.pop("data")
    return seal_parts(compact(envelope), str(envelope["id"]), subject, compact(data), key_id=key_id, key=key)


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def key_id_of(event: CloudEvent) -> str:
    """The id of the key a sealed event was sealed under (its subject)."""
    return event.subject


def open_event(event: CloudEvent, key: bytes) -> CloudEvent:
    """The event as it was before sealing: its customer key as `subject`, its data in clear. PermanentError when
    the sealed data is malformed, of another algorithm, or does not open under the key (tampered, moved)."""
    algorithm = (event.model_extra or {}).get(SEALED_ATTRIBUTE)
    if algorithm != ALGORITHM:
        raise PermanentError(f"sealed with an unknown algorithm {str(algorithm)[:20]!r}")
    try:
        sealed = base64.b64decode(event.data["ciphertext"], validate=True)
        plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], event.id.encode())
        opened = json.loads(plain)
        subject, data = opened["subject"], opened["data"]
    except (KeyError, TypeError, ValueError, binascii.Error, InvalidTag):
        raise PermanentError("sealed data does not open under its key") from None
    if not isinstance(subject, str) or not subject or not isinstance(data, dict):
        raise PermanentError("sealed data does not open to a subject and data")
    # A copy with the two fields replaced (both checked above, as the model would): the envelope was validated.
    clear = event.model_copy(update={"subject": subject, "data": data})
    clear.__pydantic_extra__ = {k: v for k, v in (event.model_extra or {}).items() if k != SEALED_ATTRIBUTE}
    return clear
