"""Sealing touchpoints before they are published (docs/erasure.md, crypto-shredding), with ingest's own keys.

Each record is sealed under the data key of its subject (the customer key: userId, else anonymousId), fetched
for a whole request at once from a `KeyCache` in front of `subject_keys` (created on first sight). The record's
Kafka key becomes the key's id, so a customer's records keep one partition, and the clear id appears nowhere.
"""

from __future__ import annotations

from collections.abc import Collection

from lifecycle_shared.erasure import id_hash
from lifecycle_shared.keyring import KeyCache, SubjectKey
from lifecycle_shared.sealing import seal_parts
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_ingest.db import subject_keys as db
from lifecycle_ingest.publisher import Record


class LocalKeyring:
    """The keyring of the process that keeps the keys: its database, cached (lifecycle_shared.keyring)."""

    def __init__(self, engine: AsyncEngine, pepper: bytes, cache: KeyCache) -> None:
        """`cache`: shared with the erasure handler, which forgets the keys it destroys."""
        self._engine, self._pepper, self.cache = engine, pepper, cache

    async def keys_for(self, customer_ids: Collection[str]) -> dict[str, SubjectKey]:
        found = {c: k for c in customer_ids if (k := self.cache.subject_key(c)) is not None}
        missing = {id_hash(self._pepper, c): c for c in set(customer_ids) if c not in found}
        if missing:
            async with self._engine.begin() as conn:
                created = await db.keys_for_hashes(conn, sorted(missing))
            fetched = {missing[h]: key for h, key in created.items()}
            self.cache.keep({}, fetched)
            found |= fetched
        return found

    async def keys_of(self, key_ids: Collection[str]) -> dict[str, bytes]:
        found = {i: k for i in key_ids if (k := self.cache.key(i)) is not None}
        missing = sorted(set(key_ids) - set(found))
        if missing:
            async with self._engine.connect() as conn:
                fetched = await db.keys_by_id(conn, missing)
            self.cache.keep(fetched)
            found |= fetched
        return found

    async def seal(self, records: list[Record]) -> list[Record]:
        """The records sealed, each under its subject's key (the same order)."""
        keys = await self.keys_for({record.subject for record in records})
        sealed = []
        for record in records:
            key_id, key = keys[record.subject]
            value = seal_parts(record.head, record.event_id, record.subject, record.data, key_id=key_id, key=key)
            sealed.append(record._replace(key=key_id.encode(), value=value))
        return sealed
