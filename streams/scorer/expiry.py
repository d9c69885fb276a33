"""Expiry on event time: scored events and held labels forgotten once their label TTL
passed on their partition's clock, and pending predictions capped.

:class:`Expiry` runs on a timer and after each events batch (the cap); it finds what is
due with an :class:`ExpiryIndex`, without scanning the tables.

Per partition, the entries in time order (ties in the order pushed). Entries are pushed
when written; an entry popped as due is checked against the table by the caller (it may
have been replaced or deleted since), so stale items cost nothing but their slot. After a
rebalance the index is rebuilt from the table once.

The index holds one entry per pending prediction and held label, up to
``state.max_pending`` (2,000,000 by default) of the first: with a one-day label TTL, a day
of events. Kept as a heap of ``(time, key)`` tuples it was a list that every full
collection of the cyclic GC walked item by item (a million entries: 50 ms of CPU a
collection, though the tuples themselves were untracked). Here the times and a slot
number per entry are flat arrays (``array("q")``) and the keys a dict of slot to
``bytes``, which the collector does not track: a collection visits a few objects per
partition, whatever the number of entries.

>>> index = ExpiryIndex()
>>> index.push(0, 300, b"c"); index.push(0, 100, b"a"); index.push(1, 50, b"z")
>>> list(index.due(0, up_to_ms=200))
[(100, b'a')]
>>> list(index.due(0, up_to_ms=1_000)), len(index)
([(300, b'c')], 1)
>>> index.pop_oldest(), index.pop_oldest()
((1, 50, b'z'), None)
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

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

#: Entries popped from a partition's front before its arrays are compacted (when they
#: are also half of what the arrays hold).
COMPACT_AFTER = 4096


class _Queue:
    """One partition's entries: ``times[head:]`` sorted, ``slots`` beside them, the keys
    by slot (nothing here the cyclic GC walks per entry)."""

    __slots__ = ("head", "keys", "slots", "times")

    def __init__(self) -> None:
        self.times = array("q")
        self.slots = array("q")
        self.head = 0
        self.keys: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self.times) - self.head

    def insert(self, ts_ms: int, slot: int, key: bytes) -> None:
        self.keys[slot] = key
        times = self.times
        if len(times) == self.head or ts_ms >= times[-1]:  # in time order: the usual case
            times.append(ts_ms)
            self.slots.append(slot)
        else:
            at = bisect_right(times, ts_ms, self.head)
            times.insert(at, ts_ms)
            self.slots.insert(at, slot)

    def take(self, end: int) -> list[tuple[int, bytes]]:
        """Remove and return the entries ``head..end``."""
        out = [(self.times[i], self.keys.pop(self.slots[i])) for i in range(self.head, end)]
        self.head = end
        if self.head == len(self.times):
            del self.times[:], self.slots[:]
            self.head = 0
        elif self.head >= COMPACT_AFTER and 2 * self.head >= len(self.times):
            del self.times[:self.head], self.slots[:self.head]
            self.head = 0
        return out


class ExpiryIndex:
    """Entries ``(time, key)`` per partition, taken oldest first (see the module docstring)."""

    def __init__(self) -> None:
        self._queues: dict[int, _Queue] = {}
        self._slot = 0

    def _queue(self, partition: int) -> _Queue:
        q = self._queues.get(partition)
        if q is None:
            q = self._queues[partition] = _Queue()
        return q

    def push(self, partition: int, ts_ms: int, key: bytes) -> None:
        self._queue(partition).insert(ts_ms, self._slot, key)
        self._slot += 1

    def extend(self, partition: int, entries: Iterable[tuple[int, bytes]]) -> None:
        """Push many entries at once, in any order (sorted once, not inserted one by one)."""
        q = self._queue(partition)
        merged = [(q.times[i], q.slots[i]) for i in range(q.head, len(q.times))]
        for ts_ms, key in entries:
            q.keys[self._slot] = key
            merged.append((ts_ms, self._slot))
            self._slot += 1
        merged.sort()
        q.times = array("q", (ts for ts, _ in merged))
        q.slots = array("q", (slot for _, slot in merged))
        q.head = 0

    def due(self, partition: int, up_to_ms: int) -> Iterator[tuple[int, bytes]]:
        """Pop and yield the entries of ``partition`` with time ``< up_to_ms``, oldest first."""
        q = self._queues.get(partition)
        if q is None:
            return iter(())
        return iter(q.take(bisect_left(q.times, up_to_ms, q.head)))

    def oldest(self, partition: int) -> tuple[int, bytes] | None:
        q = self._queues.get(partition)
        if not q:
            return None
        return q.times[q.head], q.keys[q.slots[q.head]]

    def pop_oldest(self) -> tuple[int, int, bytes] | None:
        """Pop the oldest entry of any partition: ``(partition, ts_ms, key)``."""
        best = min(((q.times[q.head], p) for p, q in self._queues.items() if q), default=None)
        if best is None:
            return None
        q = self._queues[best[1]]
        ((ts_ms, key),) = q.take(q.head + 1)
        return best[1], ts_ms, key

    def partitions(self) -> list[int]:
        return list(self._queues)

    def clear(self) -> None:
        self._queues.clear()

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())


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
        pending: dict[int, list[tuple[int, bytes]]] = {}
        for key, raw in self.tables.pending.items():
            try:
                p = decode(raw, Pending)
            except StateDecodeError:
                continue
            pending.setdefault(p.partition, []).append((self.pending_due_ms(p.ts_ms), key))
        held: dict[int, list[tuple[int, bytes]]] = {}
        for key, raw in self.tables.held.items():
            try:
                h = decode(raw, HeldLabel)
            except StateDecodeError:
                continue
            held.setdefault(h.partition, []).append(
                (held_label_expiry_ms(h.ts_ms, self.ttl_ms), key))
        for index, entries in ((self.pending_index, pending), (self.held_index, held)):
            for partition, found in entries.items():
                index.extend(partition, found)
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
