"""The data-key cache (lifecycle_shared.keyring.KeyCache): a key is served for its lifetime, not after; a destroyed
key is forgotten at once, by key id and by customer."""

from __future__ import annotations

from lifecycle_shared.keyring import KeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_served_for_its_lifetime_and_not_after():
    clock = Clock()
    cache = KeyCache(ttl_s=30, clock=clock)
    cache.keep({"k1": b"one"}, {"user-1": ("k2", b"two")})
    assert (cache.key("k1"), cache.key("k2"), cache.subject_key("user-1")) == (b"one", b"two", ("k2", b"two"))
    clock.now += 29.9
    assert cache.key("k1") == b"one"
    clock.now += 0.2
    assert (cache.key("k1"), cache.key("k2"), cache.subject_key("user-1")) == (None, None, None)


def test_a_destroyed_key_is_forgotten_by_key_id_and_by_customer():
    cache = KeyCache(ttl_s=30, clock=Clock())
    cache.keep({}, {"user-1": ("k1", b"one"), "user-2": ("k2", b"two")})
    cache.forget(["k1"])
    assert (cache.key("k1"), cache.subject_key("user-1")) == (None, None)
    assert (cache.key("k2"), cache.subject_key("user-2")) == (b"two", ("k2", b"two"))


def test_a_request_that_fetches_a_key_also_refreshes_its_keys_near_their_end():
    clock = Clock()
    cache = KeyCache(ttl_s=30, clock=clock)
    cache.keep({}, {"old": ("k1", b"one")})
    clock.now += 20
    cache.keep({}, {"young": ("k2", b"two")})
    assert cache.subject_keys(["old", "young"], refresh_within_s=15) == (
        {"old": ("k1", b"one"), "young": ("k2", b"two")}, set())  # nothing to fetch: nothing refreshed early
    assert cache.subject_keys(["old", "young", "new"], refresh_within_s=15) == (
        {"old": ("k1", b"one"), "young": ("k2", b"two")}, {"new", "old"})
    clock.now += 10
    assert cache.subject_keys(["old", "young"]) == ({"young": ("k2", b"two")}, {"old"})
