"""Kafka's default partitioner (murmur2 of the key), so envelopes go where keyed messages would.

Same result as the Java client's ``Utils.toPositive(Utils.murmur2(key)) % partitions`` and
librdkafka's ``murmur2_random`` for non-empty keys.
"""

from __future__ import annotations

import struct
from functools import lru_cache

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2, as an unsigned int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length & ~3
    for word in struct.unpack_from(f"<{end >> 2}I", data):  # little-endian 32-bit words, as Java reads them
        k = (word * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    extra = length & 3
    if extra == 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@lru_cache(maxsize=65536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
