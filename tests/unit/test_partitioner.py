"""Our murmur2 partitioner picks the partitions Kafka's Java client and librdkafka pick."""

from __future__ import annotations

import pytest

from schemas.partitioner import murmur2, partition_for


def _signed(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


# Vectors from Apache Kafka's UtilsTest.testMurmur2 (the Java client's partitioner).
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert _signed(murmur2(key)) == expected


def test_partition_is_stable_and_in_range() -> None:
    for i in range(500):
        key = f"phc_token:user-{i}".encode()
        p = partition_for(key, 7)
        assert 0 <= p < 7
        assert partition_for(key, 7) == p
