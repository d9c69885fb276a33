"""Kafka's default partition of many keys at once: murmur2 of each key's UTF-8 bytes.

The same arithmetic as the Java client's ``Utils.murmur2`` (and kafka-python's
``DefaultPartitioner``), on numpy ``uint32`` arrays: keys of equal length are hashed
together, four bytes at a time, so a column of entity ids is partitioned without a Python
call per key.

>>> from kafka.partitioner.default import DefaultPartitioner
>>> keys = ["u1", "c001", "entity-42", "", "é", "abcdefgh"]
>>> parts = list(range(6))
>>> kafka_partitions(pa.array(keys), 6).tolist() == [
...     DefaultPartitioner()(k.encode(), parts, parts) for k in keys]
True
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_SEED = np.uint32(0x9747B28C)
_M = np.uint32(0x5BD1E995)


def murmur2(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """murmur2 (Kafka's variant) of each string's UTF-8 bytes, as uint32."""
    if isinstance(keys, pa.ChunkedArray):  # a column pandas holds in several pieces
        keys = keys.combine_chunks()
    keys = keys.cast(pa.large_binary())
    if keys.null_count:
        raise ValueError("a key to partition by is null")
    n = len(keys)
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64, count=n + 1,
                            offset=keys.offset * 8)
    data = keys.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    out = np.empty(n, dtype=np.uint32)
    with np.errstate(over="ignore"):
        for length in np.unique(lengths).tolist():
            rows = np.flatnonzero(lengths == length)
            block = raw[offsets[rows][:, None] + np.arange(length)] if length else \
                np.zeros((len(rows), 0), dtype=np.uint8)
            block = block.astype(np.uint32)
            h = np.full(len(rows), _SEED ^ np.uint32(length), dtype=np.uint32)
            for i in range(length // 4):
                k = (block[:, 4 * i] | (block[:, 4 * i + 1] << 8)
                     | (block[:, 4 * i + 2] << 16) | (block[:, 4 * i + 3] << 24))
                k *= _M
                k ^= k >> 24
                k *= _M
                h *= _M
                h ^= k
            tail, base = length % 4, length & ~3
            if tail >= 3:
                h ^= block[:, base + 2] << 16
            if tail >= 2:
                h ^= block[:, base + 1] << 8
            if tail >= 1:
                h ^= block[:, base]
                h *= _M
            h ^= h >> 13
            h *= _M
            h ^= h >> 15
            out[rows] = h
    return out


def kafka_partitions(keys: pa.Array, partitions: int) -> np.ndarray:
    """The partition Kafka's default partitioner gives each key (int64)."""
    if partitions < 1:
        raise ValueError("a topic has at least one partition")
    return ((murmur2(keys) & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)).astype(np.int64)
