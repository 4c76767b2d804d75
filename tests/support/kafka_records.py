"""Consumer records built by hand: what a consumer would have polled, for the real runner without a broker."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord


def record(topic: str, offset: int, value: bytes, key: bytes = b"c1") -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=key,
                          value=value, checksum=None, serialized_key_size=len(key),
                          serialized_value_size=len(value), headers=[("traceparent", b"00-abc")])
