"""Sealing touchpoints before they are published (docs/erasure.md, crypto-shredding), with ingest's own keys.

Each record is sealed under the data key of its subject (the customer key: userId, else anonymousId), fetched
for a whole request at once from a `KeyCache` in front of `subject_keys` (created on first sight). The record's
Kafka key becomes the key's id, so a customer's records keep one partition, and the clear id appears nowhere.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lifecycle_shared.erasure import id_hash
from lifecycle_shared.keyring import KeyCache, SubjectKey
from lifecycle_shared.sealing import NONCE_BYTES, seal_plain
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_ingest.coalescing import GroupedLookup
from lifecycle_ingest.db import subject_keys as db
from lifecycle_ingest.domain.touchpoints import to_json
from lifecycle_ingest.publisher import Record, plain_of


class LocalKeyring:
    """The keyring of the process that keeps the keys: its database, cached (lifecycle_shared.keyring)."""

    def __init__(self, engine: AsyncEngine, pepper: bytes, cache: KeyCache) -> None:
        """`cache`: shared with the erasure handler, which forgets the keys it destroys."""
        self._engine, self._pepper, self.cache = engine, pepper, cache
        # Finding (and creating) keys needs no transaction: `keys_for_hashes` is correct statement by statement
        # (the insert is atomic, the select after it reads what any creator committed). Without one, a request
        # whose keys expired from the cache costs one round trip (the select), not three (BEGIN, it, COMMIT).
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Concurrent requests' first-seen or expired customers: found (and created) together, a round trip for
        # a burst, not one per request (lifecycle_ingest.coalescing).
        self._lookups = GroupedLookup(self._keys_for_hashes)

    async def _keys_for_hashes(self, hashes: list[str]) -> dict[str, SubjectKey]:
        async with self._autocommit.connect() as conn:
            return await db.keys_for_hashes(conn, hashes)

    async def keys_for(self, customer_ids: Collection[str]) -> dict[str, SubjectKey]:
        # A request that must fetch a key anyway refreshes those of its keys in the second half of their life: a
        # busy shop's requests then find an expired key about half as often (each find costs a round trip).
        found, fetch = self.cache.subject_keys(customer_ids, refresh_within_s=self.cache.ttl_s / 2)
        missing = {id_hash(self._pepper, c): c for c in fetch}
        if missing:
            created = await self._lookups.get(missing)
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
        """The records sealed, each under its subject's key (the same order). Per request, not per record: the
        keys fetched, each key's AESGCM and its id's JSON made, and the nonces drawn (one random read)."""
        keys = await self.keys_for({record.subject for record in records})
        sealers = {subject: (key_id.encode(), to_json(key_id), AESGCM(key)) for subject, (key_id, key) in keys.items()}
        nonces = os.urandom(NONCE_BYTES * len(records))
        sealed = []
        for index, record in enumerate(records):
            kafka_key, key_id_json, aead = sealers[record.subject]
            nonce = nonces[index * NONCE_BYTES:(index + 1) * NONCE_BYTES]
            value = seal_plain(record.head, record.event_id, plain_of(record), key_id_json=key_id_json, aead=aead,
                               nonce=nonce)
            sealed.append(record._replace(key=kafka_key, value=value))
        return sealed
