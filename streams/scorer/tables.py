"""The scorer's four tables: plain-data bytes values whose changelog is written once per
dirty key per batch, and the one place they are read and decoded.

Faust writes a table's changelog on every ``table[key] = value``, one Faust send each
(about 240 µs). The scorer instead changes values while it processes a batch and calls
:meth:`StateTable.flush` once at the end: one changelog record per key that changed (the
latest value, or a tombstone), produced straight through the app's producer to the key's
partition. The batch's input offsets are acknowledged only after the flush's sends are
accepted, so a crash replays the batch against the state before it.

Two kinds of store:

- :class:`StateTable` over a mapping: Faust's memory store (which remembers each key's
  partition in ``_key_partition`` so its recovery drops keys of partitions this worker no
  longer holds), or a plain dict in tests. Writes go to the mapping at once.
- :class:`RocksStateTable` over one RocksDB database per partition (faust-streaming's
  ``rocksdb://`` store, see :class:`FaustPartitions`): state on disk, so memory does not
  grow with entities and a restart replays only the changelog past the offset each
  partition database persisted. A batch's writes wait in memory (visible to reads) until
  :meth:`RocksStateTable.commit` is given the changelog offsets the broker acknowledged:
  then each partition's writes and its persisted offset go to its database in one atomic
  write batch. Every key lands in the database of the partition it was written for (never
  the partition of whatever event Faust thinks is current), and the persisted offset never
  runs ahead of the changelog: a crash before the commit leaves the database at the last
  acknowledged batch, and recovery replays the changelog from there.

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
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

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
        out = [(self.changelog, key, self.get(key), partition)
               for key, partition in self._dirty.items()]
        self._dirty.clear()
        return out

    def commit(self, acked: Mapping[int, int]) -> None:
        """The flushed records were acknowledged at these changelog offsets (partition ->
        offset of the last acknowledged batch): nothing to do for a mapping, which holds
        every write already."""

    def forget(self) -> None:
        """Partitions moved (nothing cached here)."""


class PartitionDatabases(Protocol):
    """The RocksDB databases of the partitions this worker serves (rocksdict ``Rdict``s in
    raw mode), and the key under which each keeps its changelog offset."""

    offset_key: bytes

    def active(self) -> Mapping[int, Any]: ...


class RocksStateTable(StateTable):
    """Values in one RocksDB database per partition, written once acknowledged (see the
    module docstring)."""

    def __init__(self, name: str, dbs: PartitionDatabases, changelog: str) -> None:
        super().__init__(name, {}, changelog)
        self.dbs = dbs
        #: Writes not yet committed: key -> (value or None for a delete, partition).
        self._writes: dict[bytes, tuple[bytes | None, int]] = {}
        #: Keys per active partition, counted when first asked and kept from then on.
        self._counts: dict[int, int] | None = None

    def _find(self, key: bytes) -> bytes | None:
        for db in self.dbs.active().values():
            if db.key_may_exist(key):  # a bloom filter: no false negatives
                value = db.get(key)
                if value is not None:
                    return value
        return None

    def get(self, key: bytes) -> bytes | None:
        written = self._writes.get(key)
        if written is not None:
            return written[0]
        return self._find(key)

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        if self._counts is None:
            self._counts = {p: sum(1 for k in db.keys() if k != self.dbs.offset_key)  # noqa: SIM118
                            for p, db in self.dbs.active().items()}
        pending = sum((v is not None) - (self._find(k) is not None)
                      for k, (v, _) in self._writes.items())
        return sum(self._counts.values()) + pending

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        seen: dict[bytes, bytes | None] = {k: v for k, (v, _) in self._writes.items()}
        out = [(k, v) for k, v in seen.items() if v is not None]
        for db in self.dbs.active().values():
            out.extend((k, v) for k, v in db.items()
                       if k != self.dbs.offset_key and k not in seen)
        return iter(out)

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        self._writes[key] = (value, partition)
        self._dirty[key] = partition

    def delete(self, key: bytes, partition: int) -> None:
        self._writes[key] = (None, partition)
        self._dirty[key] = partition

    def commit(self, acked: Mapping[int, int]) -> None:
        """Write every flushed value to its partition's database with that partition's
        acknowledged changelog offset, one atomic write batch per partition.

        A partition this worker no longer serves is skipped: its new owner recovers from
        the changelog. Values written since the last flush stay for the next commit.
        """
        from rocksdict import WriteBatch

        flushed = {k: w for k, w in self._writes.items() if k not in self._dirty}
        if not flushed and not acked:
            return
        active = self.dbs.active()
        batches: dict[int, Any] = {}
        skipped = 0
        for key, (value, partition) in flushed.items():
            db = active.get(partition)
            if db is None:
                skipped += 1
                continue
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = WriteBatch(raw_mode=True)
            if self._counts is not None and partition in self._counts:
                self._counts[partition] += (value is not None) - (db.get(key) is not None)
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        for partition, offset in acked.items():
            if partition in active:
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = WriteBatch(raw_mode=True)
                batch.put(self.dbs.offset_key, str(offset).encode())
        for partition, batch in batches.items():
            active[partition].write(batch)
        for key in flushed:
            del self._writes[key]
        if skipped:
            log.warning("table %s: %d writes for partitions this worker no longer serves "
                        "(active: %s) left to their changelog", self.name, skipped,
                        sorted(active))

    def forget(self) -> None:
        """Partitions moved: counts are taken again when next asked. Writes not yet
        committed stay: the batch they belong to is still being published, and its
        commit skips the partitions this worker lost."""
        self._counts = None


class FaustPartitions:
    """The databases of faust-streaming's RocksDB store (``table.data`` of a table on
    ``rocksdb://``) for the partitions this worker serves actively, not its standbys.

    Only the partition numbers are kept between calls (per consumer generation); the
    database objects are looked up in the store every time. Holding one would keep a
    database Faust closed on a revocation open, and its lock would stop Faust from opening
    it again when the partition comes back (it retries for 30 s, the worker stalled).
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.offset_key: bytes = store.offset_key
        self._generation: Any = object()
        self._partitions: list[int] = []

    def active(self) -> Mapping[int, Any]:
        app = self.store.app
        if app.consumer_generation_id != self._generation:
            topic = self.store.table.changelog_topic_name
            self._partitions = sorted(tp.partition for tp in app.assignor.assigned_actives()
                                      if tp.topic == topic)
            self._generation = app.consumer_generation_id
        return {p: self.store._db_for_partition(p) for p in self._partitions}


class DirectoryPartitions:
    """Partition databases opened directly under a directory, as faust-streaming's store
    opens them (raw mode, ``<name>-<partition>.db``): for benchmarks and tests in process,
    without an app. ``options``: faust-streaming ``RocksDBOptions`` (as
    :func:`rocksdb_options` makes them for a worker), else RocksDB's defaults."""

    offset_key = b"__faust\0offset__"

    def __init__(self, root: Any, name: str, partitions: list[int],
                 options: Mapping[str, int] | None = None) -> None:
        from rocksdict import AccessType, Options, Rdict

        if options is None:
            opened = Options(raw_mode=True)
        else:
            from faust.stores.rocksdb import RocksDBOptions

            opened = RocksDBOptions(**options).as_options()
        self.dbs = {p: Rdict(str(root / f"{name}-{p}.db"), options=opened,
                             access_type=AccessType.read_write()) for p in partitions}

    def active(self) -> Mapping[int, Any]:
        return self.dbs

    def close(self) -> None:
        for db in self.dbs.values():
            db.close()


def state_table(name: str, store: Any, changelog: str) -> StateTable:
    """The table for a Faust table's store: on disk for ``rocksdb://``, else in memory."""
    if hasattr(store, "_db_for_partition"):
        return RocksStateTable(name, FaustPartitions(store), changelog)
    return StateTable(name, store, changelog)


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
        return None if raw is None else self.decoded(table, key, raw, kind)

    def decoded(self, table: StateTable, key: bytes, raw: bytes, kind: type[T]) -> T | None:
        """``raw`` (the value at ``key``) decoded as ``kind``; None when undecodable."""
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

    def commit(self, acked: Mapping[tuple[str, int], int]) -> None:
        """Changelog records landed at these offsets ((topic, partition) -> offset): each
        table whose changelog is among them writes what it flushed (a table on disk; one in
        memory holds it already)."""
        for t in self.all():
            mine = {p: offset for (topic, p), offset in acked.items() if topic == t.changelog}
            if mine:
                t.commit(mine)

    def forget(self) -> None:
        """Partitions moved."""
        for t in self.all():
            t.forget()


#: The scorer's tables (entities, pending, held, partitions).
TABLE_COUNT = 4
#: RocksDB refuses memtables smaller than this.
MIN_WRITE_BUFFER_BYTES = 64 * 1024


def rocksdb_options(memory_bytes: int, partitions: int) -> dict[str, int]:
    """faust-streaming ``RocksDBOptions`` for each table, so that every partition database a
    worker may open (``TABLE_COUNT x partitions``, standbys included) together stay within
    ``memory_bytes``: half of each share for the database's block cache, half for its two
    write buffers (faust's defaults are 2 GiB and 3 x 64 MiB per database). Below
    ``MIN_WRITE_BUFFER_BYTES`` per write buffer the floor wins over the bound.

    >>> rocksdb_options(256 * 2**20, 4)
    {'block_cache_size': 8388608, 'write_buffer_size': 4194304, 'max_write_buffer_number': 2}
    """
    share = memory_bytes // (TABLE_COUNT * partitions)
    return {"block_cache_size": share // 2,
            "write_buffer_size": max(share // 4, MIN_WRITE_BUFFER_BYTES),
            "max_write_buffer_number": 2}
