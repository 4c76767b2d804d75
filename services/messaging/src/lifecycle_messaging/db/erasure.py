"""Messaging's part of a GDPR erasure (docs/erasure.md), given the keyed hashes of the customer's ids
(`customer.erasure_requested`).

Found by hashing every customer key messaging holds (erasures are rare; no hash column on every table): the
customer's keys, then their addresses (contacts, messages' recipients, consent log, the latest transition's
traits). Deleted: contacts, claims, aliases, latest transitions, last events, consents and consent changes of those
addresses, webhook deliveries whose payload names a key or address, unrelayed outbox rows. Kept, anonymised: every
message (kind, campaign, template, status, times - send statistics) under `erased:<erasure id>:<n>` with its
recipient, subject, bodies, unsubscribe link and error emptied, those still waiting suppressed (`erased`); orders
and holdout assignments (campaign lift) under the same opaque keys. Each address leaves a suppression marker (its
keyed hash, `erased_addresses`), checked before every send, until a new explicit opt-in lifts it (`markers_of`,
`lift`). A repeat changes nothing, returns the first counts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lifecycle_shared.erasure import id_hash
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.latest import PENDING
from lifecycle_messaging.domain.erasure import address_marker
from lifecycle_messaging.domain.suppression import ERASED

_EARLIER = text("SELECT counts FROM erasures WHERE erasure_id = :erasure_id")
_KEYS = text(
    "SELECT customer_id FROM messages UNION SELECT user_id FROM messages UNION SELECT unnest(linked_ids) FROM messages "
    "UNION SELECT customer_id FROM contacts UNION SELECT user_id FROM contacts "
    "UNION SELECT unnest(linked_ids) FROM contacts UNION SELECT anonymous_id FROM claims "
    "UNION SELECT user_id FROM claims UNION SELECT absorbed_id FROM aliases UNION SELECT survivor_id FROM aliases "
    "UNION SELECT user_id FROM aliases UNION SELECT customer_id FROM latest_transitions "
    "UNION SELECT person FROM holdout_assignments UNION SELECT customer_id FROM orders "
    "UNION SELECT customer_id FROM last_events UNION SELECT customer_id FROM consent_changes")
# Rows of a customer: keyed by one of `keys` in any of the columns that hold a customer's ids.
_MESSAGE_OF = ("(customer_id = ANY(CAST(:keys AS text[])) OR user_id = ANY(CAST(:keys AS text[])) "
               "OR linked_ids && CAST(:keys AS text[]))")
_ADDRESSES = text(
    f"SELECT email FROM contacts WHERE {_MESSAGE_OF} "
    f"UNION SELECT recipient FROM messages WHERE {_MESSAGE_OF} AND recipient IS NOT NULL "
    "UNION SELECT address FROM consent_changes WHERE customer_id = ANY(CAST(:keys AS text[])) "
    "UNION SELECT traits->>'email' FROM latest_transitions WHERE customer_id = ANY(CAST(:keys AS text[])) "
    "AND traits->>'email' IS NOT NULL")
_ADDRESS_IN = "lower(address) = ANY(CAST(:addresses AS text[]))"
# A webhook payload names a key or address as a JSON string: "<value>".
_PAYLOAD_NAMES = ("EXISTS (SELECT 1 FROM unnest(CAST(:needles AS text[])) AS n "
                  "WHERE strpos(lower(convert_from(payload, 'UTF8')), '\"' || n || '\"') > 0)")
_STEPS: tuple[tuple[str, str], ...] = (
    ("erased_addresses", "INSERT INTO erased_addresses (address_hash, erasure_id, erased_at) "
                         "SELECT unnest(CAST(:markers AS text[])), CAST(:erasure_id AS uuid), :now "
                         "ON CONFLICT (address_hash) DO NOTHING"),
    ("consents", f"DELETE FROM consents WHERE {_ADDRESS_IN}"),
    ("consent_changes", f"DELETE FROM consent_changes WHERE {_ADDRESS_IN} OR customer_id = ANY(CAST(:keys AS text[]))"),
    ("contacts", f"DELETE FROM contacts WHERE {_MESSAGE_OF} OR lower(email) = ANY(CAST(:addresses AS text[]))"),
    ("claims", "DELETE FROM claims WHERE anonymous_id = ANY(CAST(:keys AS text[])) "
               "OR user_id = ANY(CAST(:keys AS text[]))"),
    ("aliases", "DELETE FROM aliases WHERE absorbed_id = ANY(CAST(:keys AS text[])) "
                "OR survivor_id = ANY(CAST(:keys AS text[])) OR user_id = ANY(CAST(:keys AS text[]))"),
    ("latest_transitions", "DELETE FROM latest_transitions WHERE customer_id = ANY(CAST(:keys AS text[]))"),
    ("last_events", "DELETE FROM last_events WHERE customer_id = ANY(CAST(:keys AS text[]))"),
    ("webhook_deliveries", f"DELETE FROM webhook_deliveries WHERE {_PAYLOAD_NAMES}"),
    ("outbox", "DELETE FROM outbox WHERE key = ANY(CAST(:keys AS text[]))"),
    ("holdout_assignments", "UPDATE holdout_assignments SET person = CAST(:mapping AS jsonb)->>person "
                            "WHERE person = ANY(CAST(:keys AS text[]))"),
    ("orders", "UPDATE orders SET customer_id = CAST(:mapping AS jsonb)->>customer_id "
               "WHERE customer_id = ANY(CAST(:keys AS text[]))"),
    ("messages_suppressed", f"UPDATE messages SET status = 'suppressed', suppressed_reason = '{ERASED}', "
                            f"status_changed_at = :now WHERE {_MESSAGE_OF} AND status = ANY(CAST(:pending AS text[]))"),
    ("messages", "UPDATE messages SET customer_id = COALESCE(CAST(:mapping AS jsonb)->>customer_id, "
                 "'erased:' || :erasure_id || ':' || id::text), user_id = NULL, linked_ids = '{}', recipient = NULL, "
                 "subject = '', body = '', html = NULL, preheader = NULL, unsubscribe_url = NULL, last_error = NULL "
                 f"WHERE {_MESSAGE_OF}"),
)
_RECORD = text("INSERT INTO erasures (erasure_id, id_hashes, counts, requested_at) "
               "VALUES (:erasure_id, :hashes, CAST(:counts AS jsonb), :now) ON CONFLICT (erasure_id) DO NOTHING")


async def erase(conn: AsyncConnection, erasure_id: str, hashes: list[str], *, pepper: bytes,
                now: datetime) -> dict[str, int]:
    """Apply one erasure in the caller's transaction; the counts per table (the first run's on a repeat)."""
    earlier = (await conn.execute(_EARLIER, {"erasure_id": erasure_id})).scalar()
    if earlier is not None:
        return dict(earlier)
    wanted = set(hashes)
    keys = sorted(key for key in (await conn.execute(_KEYS)).scalars()
                  if key and not key.startswith("erased:") and id_hash(pepper, key) in wanted)
    addresses = sorted({a.strip().lower() for a in (await conn.execute(_ADDRESSES, {"keys": keys})).scalars() if a})
    params: dict[str, Any] = {
        "keys": keys, "addresses": addresses, "needles": sorted({k.lower() for k in keys} | set(addresses)),
        "markers": sorted({address_marker(pepper, a) for a in addresses}), "erasure_id": erasure_id, "now": now,
        "mapping": json.dumps({key: f"erased:{erasure_id}:{n}" for n, key in enumerate(keys)}),
        "pending": list(PENDING)}
    counts: dict[str, int] = {}
    for table, sql in _STEPS:
        counts[table] = (await conn.execute(text(sql), params)).rowcount or 0
    await conn.execute(_RECORD, {"erasure_id": erasure_id, "hashes": sorted(wanted), "counts": json.dumps(counts),
                                 "now": now})
    return counts


_MARKED = text("SELECT address_hash FROM erased_addresses WHERE address_hash = ANY(CAST(:markers AS text[]))")


async def erased_addresses(conn: AsyncConnection, addresses: list[str], *, pepper: bytes) -> set[str]:
    """Those of `addresses` an erasure left a suppression marker for."""
    markers = {address_marker(pepper, address): address for address in addresses if address}
    if not markers:
        return set()
    found = (await conn.execute(_MARKED, {"markers": sorted(markers)})).scalars()
    return {markers[marker] for marker in found}


@dataclass(frozen=True)
class Marker:
    """An erased address's suppression marker: which erasure left it, and when that erasure was requested."""

    address_hash: str
    erasure_id: str
    erased_at: datetime


_MARKERS = text("SELECT address_hash, erasure_id::text, erased_at FROM erased_addresses "
                "WHERE address_hash = ANY(CAST(:markers AS text[])) FOR UPDATE")
_LIFT = text("DELETE FROM erased_addresses WHERE address_hash = ANY(CAST(:markers AS text[]))")


async def markers_of(conn: AsyncConnection, addresses: list[str], *, pepper: bytes) -> dict[str, Marker]:
    """address -> its marker, for those of `addresses` an erasure left one for (locked until the transaction ends)."""
    by_marker = {address_marker(pepper, address): address for address in addresses if address}
    if not by_marker:
        return {}
    rows = await conn.execute(_MARKERS, {"markers": sorted(by_marker)})
    return {by_marker[row.address_hash]: Marker(row.address_hash, row.erasure_id, row.erased_at) for row in rows}


async def lift(conn: AsyncConnection, markers: list[Marker]) -> None:
    """Delete these markers: their addresses may be mailed again (consent permitting)."""
    if markers:
        await conn.execute(_LIFT, {"markers": sorted(m.address_hash for m in markers)})
