"""Every live API key in memory, refreshed within a second of any change on any instance.

Why in memory: a request is authenticated by a dict get, with no database round trip, so the
database does not bound throughput and random unknown keys cannot hammer it.

How changes are noticed: every change to keys or sources bumps the one-row `key_generation`
counter in the same transaction (lifecycle_ingest.db.keys). Each instance reads that row every
`refresh_s` (one primary-key read) and reloads all live keys only when the number moved. A counter
rather than max(changed_at): `now()` is a transaction's start time, so a slow transaction could
commit a change stamped earlier than one already seen and be missed; a counter bumped under its
row lock cannot go unseen. Nor a sequence: `nextval` is not transactional, and an instance could
see the new number before the change it announces is committed. The counter is read before the
keys, so what is loaded is at least as new as the number remembered (a change in between costs
one extra reload, never a missed one).

Expiry needs no change to be noticed: `lookup` compares `expires_at` with the clock at call time.
If the database is unreachable, the last loaded keys stay in use (revocations made meanwhile wait
for it), the failure is logged once, and every poll tries again.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from lifecycle_shared.errors import describe_error
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_ingest.db import keys as db
from lifecycle_ingest.db.keys import KEY_PREFIXES, hash_key

log = logging.getLogger(__name__)

# Longer than any key we issue (49 characters); longer input is not hashed at all.
MAX_KEY_LENGTH = 100
OUR_PREFIXES = tuple(KEY_PREFIXES.values())
POLL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    source: str
    kind: Literal["write", "server"]
    allowed_origins: frozenset[str]
    expires_at: datetime | None
    identity_secret: str | None = None  # the source's: the key of `context.userHash` (domain/verification.py)


@dataclass(frozen=True)
class _Entry:
    key_hash: str
    api_key: ApiKey


def _now() -> datetime:
    return datetime.now(UTC)


class KeyStore:
    def __init__(self, *, engine: AsyncEngine, refresh_s: float, clock: Callable[[], datetime] = _now) -> None:
        self._engine = engine
        self._refresh_s = refresh_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._origins: frozenset[str] = frozenset()
        self._generation: int | None = None
        self._failing = False
        self._task: asyncio.Task | None = None
        self._refreshing = asyncio.Lock()  # one refresh at a time: an older load never replaces a newer one

    async def start(self) -> None:
        """Load the keys (raises if the database is unreachable: better not to serve than to refuse
        every valid key), then keep them fresh in the background."""
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="key-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @property
    def loaded(self) -> bool:
        return self._generation is not None

    def lookup(self, key: str) -> ApiKey | None:
        """The live key `key` is, or None (unknown, revoked, expired, or not one of our kinds)."""
        if len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.startswith(OUR_PREFIXES):
            return None
        key_hash = hash_key(key)
        entry = self._entries.get(key_hash)
        # The dict finds the candidate; the constant-time comparison is the check.
        if entry is None or not hmac.compare_digest(entry.key_hash, key_hash):
            return None
        api_key = entry.api_key
        if not key.startswith(KEY_PREFIXES[api_key.kind]):
            return None
        if api_key.expires_at is not None and api_key.expires_at <= self._clock():
            return None
        return api_key

    def origin_allowed_anywhere(self, origin: str) -> bool:
        """Whether `origin` (as the browser sent it) is allowed by any source with a live key: enough
        to answer a CORS preflight, which carries no key."""
        return origin in self._origins

    async def refresh(self) -> bool:
        """Reload the keys if anything changed since the last load; True if it reloaded. The admin API
        calls it after each change, so the instance that made a change sees it at once."""
        async with self._refreshing:
            async with asyncio.timeout(POLL_TIMEOUT_S), self._engine.connect() as conn:
                generation = await db.generation(conn)
                if generation == self._generation:
                    return False
                rows = await db.live_keys(conn)
            self._entries = {row.key_hash: _Entry(row.key_hash, ApiKey(
                key_id=row.key_id, source=row.source, kind=row.kind, allowed_origins=frozenset(row.allowed_origins),
                expires_at=row.expires_at, identity_secret=row.identity_secret)) for row in rows}
            self._origins = frozenset(origin for row in rows for origin in row.allowed_origins)
            self._generation = generation
            return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception as error:  # noqa: BLE001 - keep serving the last loaded keys
                if not self._failing:
                    log.warning("keys: cannot refresh, serving the last loaded ones; retrying",
                                extra={"error": describe_error(error)})
                self._failing = True
                continue
            if self._failing:
                log.info("keys: refreshing again")
                self._failing = False
