"""Concurrent requests' lookups of the same kind made together, as a database's group commit does.

While one lookup runs, the keys asked for meanwhile gather in the next one, which starts when it ends and
carries them all: a burst of requests that each miss a few keys (first-seen customers) costs a round trip or
two, not one each, and a lone request waits for nothing (its lookup starts at the next turn of the loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Generic, TypeVar

V = TypeVar("V")


class _Round(Generic[V]):
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.task: asyncio.Task[Mapping[str, V]] | None = None


class GroupedLookup(Generic[V]):
    """`get(keys)` answers from `fetch(all the keys of its round)`; one round at a time."""

    def __init__(self, fetch: Callable[[list[str]], Awaitable[Mapping[str, V]]]) -> None:
        self._fetch = fetch
        self._gathering: _Round[V] | None = None  # the round new keys join: not started yet
        self._one_at_a_time = asyncio.Lock()

    async def get(self, keys: Collection[str]) -> dict[str, V]:
        joined = self._gathering
        if joined is None:
            joined = self._gathering = _Round[V]()
            joined.task = asyncio.create_task(self._run(joined))
        joined.keys.update(keys)
        assert joined.task is not None
        # shield: a request that gives up (its client went away) does not cancel the others' lookup
        found = await asyncio.shield(joined.task)
        return {key: found[key] for key in keys if key in found}

    async def _run(self, round_: _Round[V]) -> Mapping[str, V]:
        async with self._one_at_a_time:
            self._gathering = None  # from here on, keys asked for go to the next round
            return await self._fetch(sorted(round_.keys))
