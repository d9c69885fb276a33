"""The scorer's four tables: plain-data bytes values whose changelog is written once per
dirty key per batch, and the one place they are read and decoded.

Faust writes a table's changelog on every ``table[key] = value``, one Faust send each
(about 240 µs). The scorer instead changes values in memory while it processes a batch and
calls :meth:`StateTable.flush` once at the end: one changelog record per key that changed
(the latest value, or a tombstone), produced straight through the app's producer to the
key's partition. The batch's input offsets are acknowledged only after the flush's sends
are accepted, so a crash replays the batch against the state before it.

``store`` is the Faust table's store (a mapping with ``_key_partition``, as Faust's memory
store keeps it, so its recovery drops keys of partitions this worker no longer holds) or a
plain dict in tests.

>>> t = StateTable("entities", {}, changelog="app-entities-changelog")
>>> t.put(b"u1", b"state-1", partition=3); t.put(b"u1", b"state-2", partition=3)
>>> t.get(b"u1")
b'state-2'
>>> t.flush()
[('app-entities-changelog', b'u1', b'state-2', 3)]
>>> t.delete(b"u1", partition=3); t.flush()
[('app-entities-changelog', b'u1', None, 3)]

:class:`Tables` holds the four tables by role and decodes their values
(:mod:`streams.scorer.state`): a value that does not decode is logged, counted by table
(:meth:`Tables.take_decode_errors`, which each batch's result takes) and treated as absent.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TypeVar

from streams.scorer.state import StateDecodeError, Versioned, decode

log = logging.getLogger(__name__)
ChangelogRecord = tuple[str, bytes, bytes | None, int]
T = TypeVar("T", bound=Versioned)


class StateTable:
    """In-memory values with a per-batch changelog flush (see the module docstring)."""

    def __init__(self, name: str, store: MutableMapping[bytes, bytes], changelog: str) -> None:
        self.name = name
        self.store = store
        self.changelog = changelog
        self._dirty: dict[bytes, int] = {}
        #: Faust's memory store remembers each key's partition to drop revoked ones.
        self._key_partition: MutableMapping[bytes, int] | None = getattr(
            store, "_key_partition", None)

    def get(self, key: bytes) -> bytes | None:
        return self.store.get(key)

    def __contains__(self, key: bytes) -> bool:
        return key in self.store

    def __len__(self) -> int:
        return len(self.store)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.store.items()))

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        self.store[key] = value
        if self._key_partition is not None:
            self._key_partition[key] = partition
        self._dirty[key] = partition

    def delete(self, key: bytes, partition: int) -> None:
        self.store.pop(key, None)
        if self._key_partition is not None:
            self._key_partition.pop(key, None)
        self._dirty[key] = partition

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def flush(self) -> list[ChangelogRecord]:
        """The changelog records for every key changed since the last flush."""
        out = [(self.changelog, key, self.store.get(key), partition)
               for key, partition in self._dirty.items()]
        self._dirty.clear()
        return out


@dataclass
class Tables:
    """The scorer's tables by role; every decode of their values goes through here."""

    entities: StateTable
    pending: StateTable
    held: StateTable
    partitions: StateTable
    #: Values that did not decode since the last :meth:`take_decode_errors`, by table name.
    decode_errors: Counter[str] = field(default_factory=Counter)

    def all(self) -> tuple[StateTable, ...]:
        return (self.entities, self.pending, self.held, self.partitions)

    def read(self, table: StateTable, key: bytes, kind: type[T]) -> T | None:
        """The value at ``key`` decoded as ``kind``; None when absent or undecodable."""
        raw = table.get(key)
        if raw is None:
            return None
        try:
            return decode(raw, kind)
        except StateDecodeError as exc:
            self.undecodable(table.name, key, str(exc))
            return None

    def undecodable(self, table: str, key: bytes, why: str) -> None:
        """Count and log a value that does not decode (it is then treated as absent)."""
        self.decode_errors[table] += 1
        log.error("table %s key %r: %s; treated as absent", table, key[:80], why)

    def take_decode_errors(self) -> Counter[str]:
        taken, self.decode_errors = self.decode_errors, Counter()
        return taken

    def flush(self) -> dict[str, list[ChangelogRecord]]:
        """Every table's changelog records since the last flush, by table name."""
        return {t.name: t.flush() for t in self.all()}
