"""Restoring a table partition's RocksDB database from its changelog in bulk, before
faust-streaming's recovery reads it record by record.

faust-streaming's recovery hands every changelog record to Python one at a time (an event
object, a queue, a buffer: about 2,000 records/s on the shared machine), so a scorer
started on an empty data directory took minutes to restore a million entities.
:class:`RestoringStore` is faust's RocksDB store with one change: when it opens the
database of a partition this worker serves actively, it first reads that partition's
changelog from the offset the database persisted to the end, with a consumer of its own,
and writes each fetched batch of records into the database in one RocksDB write batch
with the batch's last offset as the persisted offset (:func:`catch_up`). faust's recovery
then starts after that offset and finds almost nothing left to replay. What is written is
what faust's own recovery writes (``apply_changelog_batch``: the value, or a delete for a
tombstone, and the offset), and a crash in the middle leaves a database whose persisted
offset names the last batch written, as faust's does.

Standby partitions are left to faust (they are read continuously as records come).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Mapping
from typing import Any

from faust.stores.rocksdb import Store

log = logging.getLogger(__name__)

#: faust-streaming's store URL scheme for :class:`RestoringStore` (see :func:`register`).
SCHEME = "streambed-rocksdb"
#: Records asked of the broker per fetch and written per RocksDB write batch.
FETCH_RECORDS = 20_000

#: The aiokafka client options (bootstrap servers, authentication) of each app's stores.
_CLIENTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def register(app: Any, client_options: Mapping[str, Any]) -> str:
    """Make ``app``'s tables restore in bulk; returns the store URL to give the app."""
    import faust.stores

    faust.stores.STORES.aliases[SCHEME] = f"{__name__}:RestoringStore"
    _CLIENTS[app] = dict(client_options)
    return f"{SCHEME}://"


async def catch_up(client_options: Mapping[str, Any], db: Any, offset_key: bytes,
                   topic: str, partition: int) -> int:
    """Write the changelog ``topic``/``partition`` into ``db`` (a rocksdict ``Rdict`` in raw
    mode) from after the offset it persisted under ``offset_key`` to the end of the log as
    it is now. Returns the number of records written."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from rocksdict import WriteBatch

    raw = db.get(offset_key)
    persisted = None if raw is None else int(raw)
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None,
                                fetch_max_bytes=64 * 2**20,
                                max_partition_fetch_bytes=32 * 2**20, **client_options)
    await consumer.start()
    written = 0
    try:
        consumer.assign([tp])
        first = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        start = first if persisted is None else max(first, persisted + 1)
        if start >= end:
            return 0
        consumer.seek(tp, start)
        position = start
        while position < end:
            fetched = await consumer.getmany(tp, timeout_ms=1_000, max_records=FETCH_RECORDS)
            records = fetched.get(tp, [])
            if not records:
                continue
            batch = WriteBatch(raw_mode=True)
            for r in records:
                if r.offset >= end:
                    break
                if r.value is None:
                    batch.delete(r.key)
                else:
                    batch.put(r.key, r.value)
                position = r.offset + 1
                written += 1
            batch.put(offset_key, str(position - 1).encode())
            db.write(batch)
    finally:
        await consumer.stop()
    return written


class RestoringStore(Store):
    """faust-streaming's RocksDB store that restores an active partition in bulk (see the
    module docstring) before faust's recovery takes over."""

    async def assign_partitions(self, table: Any, tps: Any, generation_id: int = 0) -> None:
        await super().assign_partitions(table, tps, generation_id)
        client = _CLIENTS.get(self.app)
        if client is None:
            return
        standbys = self.app.assignor.assigned_standbys()
        mine = sorted((tp for tp in tps
                       if tp.topic in table.changelog_topic.topics and tp not in standbys),
                      key=lambda tp: tp.partition)
        for tp in mine:
            if generation_id != self.app.consumer_generation_id:
                return  # rebalanced again: the next assignment restores what is ours
            began = time.monotonic()
            db = self._db_for_partition(tp.partition)
            n = await catch_up(client, db, self.offset_key, tp.topic, tp.partition)
            if n:
                took = time.monotonic() - began
                log.info("restored %d changelog records of %s[%d] in %.1f s (%.0f/s)", n,
                         tp.topic, tp.partition, took, n / max(took, 1e-9))
