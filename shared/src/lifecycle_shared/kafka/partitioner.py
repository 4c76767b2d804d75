"""The keyed partitioner, without its per-record cost: the same partitions as aiokafka's (and Java's)
default partitioner, murmur2 of the key modulo the partition count, with the hash remembered per key.

aiokafka's `DefaultPartitioner` hashes every key in a pure-Python loop of masks and shifts - the
larger part of a keyed `send()` (PERFORMANCE.md: keys cost ~45% of producer throughput). A customer
sends many events, so the hash is looked up instead of recomputed; a new key is hashed word by word
(`struct.unpack_from`, ~2x the reference loop). Same key, same partition as every other producer of
the topic: the per-customer order downstream depends on it (`tests/unit/test_partitioner.py`).
"""

from __future__ import annotations

import random
import struct
from functools import lru_cache

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
# Hashes of this many keys are kept (a dict entry each, ~150 bytes): a day's active customers of a
# large shop; older ones are recomputed when they come back.
HASHED_KEYS = 200_000


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), unsigned 32-bit."""
    length = len(data)
    h = _SEED ^ length
    whole = length & ~3
    for k in struct.unpack_from(f"<{whole // 4}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra >= 3:
        h ^= data[whole + 2] << 16
    if extra >= 2:
        h ^= data[whole + 1] << 8
    if extra >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


_positive_hash = lru_cache(maxsize=HASHED_KEYS)(lambda key: murmur2(key) & 0x7FFFFFFF)


def keyed_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's partitioner interface, choosing as its `DefaultPartitioner` does."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_positive_hash(key) % len(all_partitions)]
