"""The keyed partitioner chooses exactly what aiokafka's default partitioner (Java's murmur2) chooses:
every producer of a topic must put a customer's events on one partition, or their order is lost."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2
from hypothesis import given
from hypothesis import strategies as st
from lifecycle_shared.kafka.partitioner import keyed_partitioner, murmur2


@given(st.binary(max_size=300))
def test_murmur2_is_the_reference_hash(data: bytes) -> None:
    assert murmur2(data) == reference_murmur2(data)


def test_java_client_vectors() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed there; unsigned here).
    vectors = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
               b"a-little-bit-longer-string": -1486304829,
               b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
               b"abc": 479470107}
    for data, signed in vectors.items():
        assert murmur2(data) == signed & 0xFFFFFFFF


def test_same_partitions_as_the_default_partitioner_repeated_keys_included() -> None:
    rng = random.Random(7)
    keys = [f"cust_{rng.randrange(10**9):09d}".encode() for _ in range(500)]
    reference = DefaultPartitioner()
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for key in keys + keys:
            assert keyed_partitioner(key, partitions, partitions) == reference(key, partitions, partitions)


def test_unkeyed_records_go_to_an_available_partition() -> None:
    assert keyed_partitioner(None, [0, 1, 2], [2]) == 2
    assert keyed_partitioner(None, [0, 1, 2], []) in {0, 1, 2}
