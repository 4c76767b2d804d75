"""Loyalty's part of a GDPR erasure (docs/erasure.md), given the keyed hashes of the customer's ids
(`customer.erasure_requested`): the ledger's arithmetic stays - every amount, lot, order and redemption - under an
opaque key `erased:<erasure id>:<n>` instead of the customer's ids; aliases, idempotent answers and unrelayed
outbox rows keyed by them go. Applying the same erasure again changes nothing and returns the first counts."""

from __future__ import annotations

import json
from datetime import datetime

from lifecycle_shared.erasure import id_hash
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_EARLIER = text("SELECT counts FROM erasures WHERE erasure_id = :erasure_id")
_KEYS = text(
    "SELECT customer_id FROM accounts UNION SELECT customer_id FROM ledger_entries UNION SELECT customer_id FROM lots "
    "UNION SELECT customer_id FROM orders UNION SELECT customer_id FROM redemptions "
    "UNION SELECT customer_id FROM order_refunds UNION SELECT alias_id FROM customer_aliases "
    "UNION SELECT survivor_id FROM customer_aliases")
# Re-keyed in place (the key map as a jsonb object old -> new).
_REKEYED = ("accounts", "ledger_entries", "lots", "orders", "redemptions", "order_refunds")
_DELETES: tuple[tuple[str, str], ...] = (
    ("customer_aliases", "DELETE FROM customer_aliases WHERE alias_id = ANY(CAST(:keys AS text[])) "
                         "OR survivor_id = ANY(CAST(:keys AS text[]))"),
    ("idempotent_answers", "DELETE FROM idempotent_answers WHERE EXISTS (SELECT 1 FROM unnest(CAST(:keys AS text[])) "
                           "AS k WHERE strpos(scope || ' ' || CAST(body AS text), k) > 0)"),
    ("outbox", "DELETE FROM outbox WHERE key = ANY(CAST(:keys AS text[]))"),
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
    # Erasures are rare: hashing every customer key beats keeping a hash column on every table.
    keys = sorted(key for key in (await conn.execute(_KEYS)).scalars() if id_hash(pepper, key) in wanted)
    mapping = {key: f"erased:{erasure_id}:{n}" for n, key in enumerate(keys)}
    counts: dict[str, int] = {}
    for table, sql in _DELETES:
        counts[table] = (await conn.execute(text(sql), {"keys": keys})).rowcount or 0
    for table in _REKEYED:
        result = await conn.execute(text(
            f"UPDATE {table} SET customer_id = CAST(:mapping AS jsonb)->>customer_id "
            "WHERE customer_id = ANY(CAST(:keys AS text[]))"), {"mapping": json.dumps(mapping), "keys": keys})
        counts[table] = result.rowcount or 0
    await conn.execute(_RECORD, {"erasure_id": erasure_id, "hashes": sorted(wanted), "counts": json.dumps(counts),
                                 "now": now})
    return counts
