"""The audit reads only the partition a complaint's key hashes to: it must hash as Kafka does."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2
from redress_audit.reader import partition_for_key

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed 32-bit results).
KAFKA_VECTORS = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS.items())
def test_murmur2_matches_kafka(key: str, expected: int) -> None:
    value = murmur2(key.encode())
    assert (value - 2**32 if value >= 2**31 else value) == expected


@pytest.mark.parametrize("key", KAFKA_VECTORS)
def test_partition_is_kafkas_to_positive_murmur2_modulo_count(key: str) -> None:
    for count in (1, 3, 6, 7):
        assert (
            partition_for_key(key.encode(), list(range(count)))
            == (KAFKA_VECTORS[key] & 0x7FFFFFFF) % count
        )
