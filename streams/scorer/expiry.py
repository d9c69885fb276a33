"""Expiry on event time: scored events and held labels forgotten once their label TTL
passed on their partition's clock, and pending predictions capped.

:class:`Expiry` runs on a timer and after each events batch (the cap); it finds what is
due with an :class:`ExpiryIndex`, without scanning the tables.

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

from features.label_time import (
    held_label_expired,
    held_label_expiry_ms,
    pending_expired,
    pending_expiry_ms,
)
from streams.config import Config
from streams.scorer.batch import BatchResult
from streams.scorer.positions import Positions
from streams.scorer.state import HeldLabel, Pending, StateDecodeError, decode
from streams.scorer.tables import Tables


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


class Expiry:
    """What leaves the ``pending`` and ``held`` tables, and when (see the module docstring).

    The event path and the label join push what they write onto :attr:`pending_index` and
    :attr:`held_index`; after a rebalance the indexes are rebuilt from the tables once.
    """

    def __init__(self, config: Config, tables: Tables, positions: Positions) -> None:
        self.tables = tables
        self.positions = positions
        self.ttl_ms = config.model.label_ttl_ms
        self.lateness_ms = config.event.allowed_lateness_ms
        self.max_pending = config.state.max_pending
        self.pending_index = ExpiryIndex()
        self.held_index = ExpiryIndex()
        self._indexed = False

    def pending_due_ms(self, ts_ms: int) -> int:
        return pending_expiry_ms(ts_ms, self.ttl_ms, self.lateness_ms)

    def forget(self) -> None:
        """Partitions moved: the indexes are rebuilt from the tables at the next expiry."""
        self.pending_index.clear()
        self.held_index.clear()
        self._indexed = False

    def _build_index(self) -> None:
        for key, raw in self.tables.pending.items():
            try:
                p = decode(raw, Pending)
            except StateDecodeError:
                continue
            self.pending_index.push(p.partition, self.pending_due_ms(p.ts_ms), key)
        for key, raw in self.tables.held.items():
            try:
                h = decode(raw, HeldLabel)
            except StateDecodeError:
                continue
            self.held_index.push(h.partition, held_label_expiry_ms(h.ts_ms, self.ttl_ms), key)
        self._indexed = True

    def expire(self, partitions: list[int]) -> BatchResult:
        """Forget scored events and held labels whose label TTL has passed on each
        partition's event-time clock; held labels given up count as ``unmatched``."""
        if not self._indexed:
            self._build_index()
        res = BatchResult()
        for partition in partitions:
            part = self.positions.state(partition)
            clock = part.clock_ms() if part is not None else None
            if clock is None:
                continue
            for _, key in self.pending_index.due(partition, clock):
                p = self.tables.read(self.tables.pending, key, Pending)
                if p is not None and pending_expired(event_ts_ms=p.ts_ms, clock_ms=clock,
                                                     label_ttl_ms=self.ttl_ms,
                                                     lateness_ms=self.lateness_ms):
                    self.tables.pending.delete(key, partition)
                    res.predictions_expired += not p.labelled
            for _, key in self.held_index.due(partition, clock):
                h = self.tables.read(self.tables.held, key, HeldLabel)
                if h is not None and held_label_expired(label_ts_ms=h.ts_ms, clock_ms=clock,
                                                        label_ttl_ms=self.ttl_ms):
                    self.tables.held.delete(key, partition)
                    res.labels["unmatched"] += 1
        return res

    def cap_pending(self, res: BatchResult) -> None:
        """Beyond ``state.max_pending`` the oldest scored events stop waiting for labels."""
        pending = self.tables.pending
        excess = len(pending) - self.max_pending
        while excess > 0:
            oldest = self.pending_index.pop_oldest()
            if oldest is None:
                return
            partition, _, key = oldest
            if key in pending:
                pending.delete(key, partition)
                res.predictions_evicted += 1
                excess -= 1
