"""Partition databases older than their changelogs, found and discarded before Faust opens
them (faust-streaming #158, "persisted offset above the high-water mark").

A table partition's RocksDB database persists the changelog offset of the last record it
holds (:mod:`streams.scorer.tables`). A changelog that ends at or before that offset did
not make the database: the topic was deleted and created again, or the broker lost its log.
faust-streaming then refuses to recover the partition (``ConsistencyError``: "persisted
offset ... higher than the last offset in that topic") and the worker crash-loops; when the
new changelog holds one record (last offset 0) it skips that check and serves the stale
state instead. The
changelog is the truth and the database a copy of it, so before the worker starts every
database whose persisted offset its changelog does not reach is removed (logged as
discarded), and Faust recovers that partition from the changelog's beginning.

What offsets cannot show: a changelog created again and written past the old offset
before this worker restarts looks consistent. Delete the workers' data directories
whenever their topics are created again (docs/operations.md, "State on disk").

>>> stale({0: 49, 1: 10, 2: 0}, {0: 0, 1: 11, 2: 0})
[0, 2]
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def stale(persisted: Mapping[int, int], ends: Mapping[int, int]) -> list[int]:
    """The partitions whose database persisted an offset at or past the end of their
    changelog (``ends``: the offset the next record there would get; 0 when absent)."""
    return sorted(p for p, offset in persisted.items() if offset >= ends.get(p, 0))


def persisted_offset(path: Path, offset_key: bytes) -> int | None:
    """The changelog offset a partition database persisted (opened read-only: no worker
    may hold it)."""
    from rocksdict import AccessType, Options, Rdict

    db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
    try:
        raw = db.get(offset_key)
    finally:
        db.close()
    return None if raw is None else int(raw)


def discard_stale_databases(tables: Iterable[Any], end_offsets: Any) -> list[Path]:
    """Remove the partition databases of Faust ``tables`` (on faust-streaming's RocksDB
    store; others are skipped) that are older than their changelogs; return their paths.

    ``end_offsets(topic, partitions)``: the changelog's end offset per partition.
    """
    discarded: list[Path] = []
    for table in tables:
        store = table.data
        if not hasattr(store, "partition_path"):
            continue  # in memory: nothing outlives the process
        topic = table.changelog_topic.get_topic_name()
        paths = {p: store.partition_path(p) for p in range(table.partitions)}
        persisted = {p: offset for p, path in paths.items() if path.exists()
                     if (offset := persisted_offset(path, store.offset_key)) is not None}
        if not persisted:
            continue
        ends = end_offsets(topic, sorted(persisted))
        for p in stale(persisted, ends):
            log.warning("table %s partition %d: its database persisted changelog offset %d, "
                        "but %s ends at %d (the topic was created again?): discarded %s, "
                        "to be recovered from the changelog", table.name, p, persisted[p],
                        topic, ends.get(p, 0), paths[p])
            shutil.rmtree(paths[p])
            discarded.append(paths[p])
    return discarded
