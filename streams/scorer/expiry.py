"""Which table entries are due to expire, by event time, without scanning the table.

A heap of ``(time, key)`` per partition. Entries are pushed when written; an entry popped
as due is checked against the table by the caller (it may have been replaced or deleted
since), so stale heap items cost nothing but their slot. After a rebalance the index is
rebuilt from the table once.

>>> index = ExpiryIndex()
>>> index.push(0, 300, b"c"); index.push(0, 100, b"a"); index.push(1, 50, b"z")
>>> list(index.due(0, up_to_ms=200))
[(100, b'a')]
>>> list(index.due(0, up_to_ms=1_000)), len(index)
([(300, b'c')], 1)
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator


class ExpiryIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, bytes]]] = {}

    def push(self, partition: int, ts_ms: int, key: bytes) -> None:
        heapq.heappush(self._heaps.setdefault(partition, []), (ts_ms, key))

    def due(self, partition: int, up_to_ms: int) -> Iterator[tuple[int, bytes]]:
        """Pop and yield the entries of ``partition`` with time ``< up_to_ms``, oldest first."""
        heap = self._heaps.get(partition)
        while heap and heap[0][0] < up_to_ms:
            yield heapq.heappop(heap)

    def oldest(self, partition: int) -> tuple[int, bytes] | None:
        heap = self._heaps.get(partition)
        return heap[0] if heap else None

    def pop_oldest(self) -> tuple[int, int, bytes] | None:
        """Pop the oldest entry of any partition: ``(partition, ts_ms, key)``."""
        best = min(((h[0], p) for p, h in self._heaps.items() if h), default=None)
        if best is None:
            return None
        (ts_ms, key), partition = heapq.heappop(self._heaps[best[1]]), best[1]
        return partition, ts_ms, key

    def partitions(self) -> list[int]:
        return list(self._heaps)

    def clear(self) -> None:
        self._heaps.clear()

    def __len__(self) -> int:
        return sum(len(h) for h in self._heaps.values())
