"""The customers' data keys (docs/erasure.md, crypto-shredding), as the services that seal or open records get them.

Ingest keeps the keys (`subject_keys`) and serves them on its key API; the other services reach it at
`LIFECYCLE_KEYS_URL` with the token derived from `LIFECYCLE_ERASURE_PEPPER` (`sealing.keys_token`). Keys are
cached for `ttl_s`: a key destroyed by an erasure may still open (or seal) records in a process that fetched it
for that long - the same window as events in flight around the erasure, which docs/erasure.md treats as a new
person's.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

import httpx

from lifecycle_shared.erasure import id_hash
from lifecycle_shared.sealing import keys_token

SubjectKey = tuple[str, bytes]  # (key id, key)
DEFAULT_TTL_S = 30.0
MAX_CACHED = 200_000
# Ids per call: what one API request carries at most (the API refuses more).
MAX_IDS_PER_CALL = 1000


class KeysUnavailable(Exception):
    """The key store could not be asked (ingest down, a timeout, a refused token): try again later."""


class Keyring(Protocol):
    async def keys_for(self, customer_ids: Collection[str]) -> dict[str, SubjectKey]:
        """Each customer id's key (created if it has none yet): what sealing takes."""
        ...

    async def keys_of(self, key_ids: Collection[str]) -> dict[str, bytes]:
        """The keys of these ids; an id missing from the answer was destroyed (erased): what opening takes."""
        ...


class KeyCache:
    """Keys by key id and by customer id, each for `ttl_s` (monotonic clock), at most MAX_CACHED of each."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self._clock = ttl_s, clock
        self._by_key_id: dict[str, tuple[bytes, float]] = {}
        self._by_customer: dict[str, tuple[SubjectKey, float]] = {}

    def key(self, key_id: str) -> bytes | None:
        found = self._by_key_id.get(key_id)
        return found[0] if found and found[1] > self._clock() else None

    def subject_key(self, customer_id: str) -> SubjectKey | None:
        found = self._by_customer.get(customer_id)
        return found[0] if found and found[1] > self._clock() else None

    def subject_keys(self, customer_ids: Collection[str], *, refresh_within_s: float = 0.0
                     ) -> tuple[dict[str, SubjectKey], set[str]]:
        """The cached keys of these customers, and the customers whose key must be fetched: those not cached (or
        expired) and, when there is any, also those whose key expires within `refresh_within_s`. Fetched in the
        same round trip, the keys a request needs expire together, so fewer later requests find one expired."""
        now = self._clock()
        found: dict[str, SubjectKey] = {}
        fetch: set[str] = set()
        soon: list[str] = []
        for customer_id in customer_ids:
            entry = self._by_customer.get(customer_id)
            if entry is None or entry[1] <= now:
                fetch.add(customer_id)
            else:
                found[customer_id] = entry[0]
                if entry[1] - now < refresh_within_s:
                    soon.append(customer_id)
        if fetch:
            fetch.update(soon)
        return found, fetch

    def keep(self, keys: dict[str, bytes], subjects: dict[str, SubjectKey] | None = None) -> None:
        until = self._clock() + self.ttl_s
        for cache in (self._by_key_id, self._by_customer):
            if len(cache) > MAX_CACHED:
                cache.clear()
        self._by_key_id.update((key_id, (key, until)) for key_id, key in keys.items())
        for customer_id, (key_id, key) in (subjects or {}).items():
            self._by_customer[customer_id] = ((key_id, key), until)
            self._by_key_id[key_id] = (key, until)

    def forget(self, key_ids: Collection[str]) -> None:
        """Drop destroyed keys (the process that destroyed them knows at once)."""
        gone = set(key_ids)
        for key_id in gone:
            self._by_key_id.pop(key_id, None)
        for customer_id in [c for c, ((key_id, _), _) in self._by_customer.items() if key_id in gone]:
            del self._by_customer[customer_id]


def chunks(items: list[str]) -> list[list[str]]:
    return [items[i:i + MAX_IDS_PER_CALL] for i in range(0, len(items), MAX_IDS_PER_CALL)]


class RemoteKeyring:
    """Ingest's key API (`POST /internal/keys`, `POST /internal/keys/lookup`) behind a `KeyCache`."""

    def __init__(self, url: str, pepper: bytes, *, ttl_s: float = DEFAULT_TTL_S, timeout_s: float = 5.0) -> None:
        self._pepper = pepper
        self._cache = KeyCache(ttl_s=ttl_s)
        self._client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s,
                                         headers={"authorization": f"Bearer {keys_token(pepper)}"})

    async def close(self) -> None:
        await self._client.aclose()

    async def keys_for(self, customer_ids: Collection[str]) -> dict[str, SubjectKey]:
        found = {c: k for c in customer_ids if (k := self._cache.subject_key(c)) is not None}
        missing = [c for c in set(customer_ids) if c not in found]
        if missing:
            by_hash = {id_hash(self._pepper, c): c for c in missing}
            fetched: dict[str, SubjectKey] = {}
            for part in chunks(sorted(by_hash)):
                answer = await self._post("/internal/keys", {"id_hashes": part})
                fetched |= {by_hash[h]: (k["key_id"], base64.b64decode(k["key"])) for h, k in answer.items()}
            self._cache.keep({}, fetched)
            found |= fetched
        return found

    async def keys_of(self, key_ids: Collection[str]) -> dict[str, bytes]:
        found = {i: k for i in key_ids if (k := self._cache.key(i)) is not None}
        missing = sorted(set(key_ids) - set(found))
        fetched: dict[str, bytes] = {}
        for part in chunks(missing):
            answer = await self._post("/internal/keys/lookup", {"key_ids": part})
            fetched |= {key_id: base64.b64decode(key) for key_id, key in answer.items()}
        self._cache.keep(fetched)
        return found | fetched

    async def _post(self, path: str, body: dict[str, list[str]]) -> dict[str, Any]:
        try:
            response = await self._client.post(path, json=body)
            response.raise_for_status()
            keys: dict[str, Any] = response.json()["keys"]
            return keys
        except (httpx.HTTPError, ValueError, KeyError) as error:
            raise KeysUnavailable(f"{path}: {type(error).__name__}") from error
