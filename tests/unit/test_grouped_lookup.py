"""Concurrent key lookups made together (lifecycle_ingest.coalescing.GroupedLookup): what is asked for while a
lookup runs goes in one next lookup; each request gets its own keys only; a failure reaches its round's
requests and not the next round; a request that gives up does not cancel the others' lookup."""

from __future__ import annotations

import asyncio

import pytest
from lifecycle_ingest.coalescing import GroupedLookup


class Store:
    """A lookup that holds each call until released, recording what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_next = False

    async def fetch(self, keys: list[str]) -> dict[str, str]:
        self.calls.append(keys)
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database away")
        return {key: key.upper() for key in keys}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_keys_asked_for_while_a_lookup_runs_are_looked_up_together_next():
    store = Store()
    lookup = GroupedLookup(store.fetch)
    first = asyncio.create_task(lookup.get(["a"]))
    await settle()  # the first lookup runs (held)
    later = [asyncio.create_task(lookup.get(keys)) for keys in (["c", "b"], ["b"], ["d"])]
    await settle()
    assert store.calls == [["a"]]  # nothing else started while it runs
    store.release.set()
    answers = await asyncio.gather(first, *later)
    assert store.calls == [["a"], ["b", "c", "d"]]  # one lookup for the three requests that waited
    assert answers == [{"a": "A"}, {"c": "C", "b": "B"}, {"b": "B"}, {"d": "D"}]  # each its own keys only


async def test_a_failed_lookup_fails_its_requests_and_the_next_round_answers():
    store = Store()
    store.fail_next = True
    lookup = GroupedLookup(store.fetch)
    failing = [asyncio.create_task(lookup.get([key])) for key in ("a", "b")]
    await settle()
    store.release.set()
    for task in failing:
        with pytest.raises(ConnectionError):
            await task
    assert await lookup.get(["a"]) == {"a": "A"}
    assert store.calls == [["a", "b"], ["a"]]


async def test_a_request_that_gives_up_does_not_cancel_the_others_lookup():
    store = Store()
    lookup = GroupedLookup(store.fetch)
    leaving, staying = asyncio.create_task(lookup.get(["a"])), asyncio.create_task(lookup.get(["b"]))
    await settle()
    leaving.cancel()
    await settle()
    store.release.set()
    assert await staying == {"b": "B"}
    assert leaving.cancelled() and store.calls == [["a", "b"]]
