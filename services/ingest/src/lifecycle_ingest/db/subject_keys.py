"""The data keys customers' records are sealed under (docs/erasure.md, crypto-shredding), and their erasure."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from lifecycle_shared.keyring import SubjectKey
from lifecycle_shared.sealing import new_key
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_CREATE = text(
    "INSERT INTO subject_keys (key_id, id_hash, key) "
    "SELECT * FROM unnest(CAST(:key_ids AS uuid[]), CAST(:hashes AS text[]), CAST(:keys AS bytea[])) "
    "ON CONFLICT (id_hash) DO NOTHING")
_BY_HASH = text("SELECT id_hash, key_id::text, key FROM subject_keys WHERE id_hash = ANY(CAST(:hashes AS text[]))")
_BY_ID = text("SELECT key_id::text, key FROM subject_keys WHERE key_id = ANY(CAST(:key_ids AS uuid[]))")
_EARLIER = text("SELECT counts FROM erasures WHERE erasure_id = :erasure_id")
_DELETE = text("DELETE FROM subject_keys WHERE id_hash = ANY(CAST(:hashes AS text[])) RETURNING key_id::text")
_RECORD = text("INSERT INTO erasures (erasure_id, id_hashes, counts, requested_at) "
               "VALUES (:erasure_id, :hashes, CAST(:counts AS jsonb), :now) ON CONFLICT (erasure_id) DO NOTHING")


async def keys_for_hashes(conn: AsyncConnection, hashes: list[str]) -> dict[str, SubjectKey]:
    """The key of each id hash, created for those that have none (concurrent creators agree: the first wins)."""
    found = {row.id_hash: (row.key_id, row.key) for row in await conn.execute(_BY_HASH, {"hashes": hashes})}
    missing = [h for h in hashes if h not in found]
    if missing:
        await conn.execute(_CREATE, {"key_ids": [str(uuid.uuid4()) for _ in missing], "hashes": missing,
                                     "keys": [new_key() for _ in missing]})
        found |= {row.id_hash: (row.key_id, row.key) for row in await conn.execute(_BY_HASH, {"hashes": missing})}
    return found


async def keys_by_id(conn: AsyncConnection, key_ids: list[str]) -> dict[str, bytes]:
    """The keys that still exist among these ids (a missing one was erased, or never was)."""
    return {row.key_id: row.key for row in await conn.execute(_BY_ID, {"key_ids": key_ids})}


async def erase(conn: AsyncConnection, erasure_id: str, hashes: list[str], *, pepper: bytes,
                now: datetime) -> tuple[dict[str, int], list[str]]:
    """Ingest's part of an erasure: the keys of the customer's ids destroyed (every record sealed under them is
    unreadable from now on), recorded in `erasures`. The counts (the first run's on a repeat) and the key ids
    destroyed now. `pepper` is not needed: the keys are found by the hashes the erasure carries."""
    earlier = (await conn.execute(_EARLIER, {"erasure_id": erasure_id})).scalar()
    if earlier is not None:
        return dict(earlier), []
    destroyed = list((await conn.execute(_DELETE, {"hashes": hashes})).scalars())
    counts = {"subject_keys": len(destroyed)}
    await conn.execute(_RECORD, {"erasure_id": erasure_id, "hashes": sorted(set(hashes)),
                                 "counts": json.dumps(counts), "now": now})
    return counts, destroyed
