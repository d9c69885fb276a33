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
#: With nothing fetched for this long the bulk restore stops where it is (what it wrote
#: is persisted with its offset) and leaves the rest to faust's recovery.
STALL_SECONDS = 30.0

#: The aiokafka client options (bootstrap servers, authentication) of each app's stores.
_CLIENTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
#: The consumer each app's stores share (started when first needed, then kept: it holds
#: no assignment between restores).
_CONSUMERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def register(app: Any, client_options: Mapping[str, Any]) -> str:
    """Make ``app``'s tables restore in bulk; returns the store URL to give the app."""
    import faust.stores

    faust.stores.STORES.aliases[SCHEME] = f"{__name__}:RestoringStore"
    _CLIENTS[app] = dict(client_options)

    @app.on_before_shutdown.connect
    async def stop_restore_consumer(app: Any, **kwargs: Any) -> None:
        consumer = _CONSUMERS.pop(app, None)
        if consumer is not None:
            await consumer.stop()

    return f"{SCHEME}://"


async def catch_up(consumer: Any, dbs: Mapping[Any, Any], offset_key: bytes) -> int:
    """Write each changelog partition (an aiokafka ``TopicPartition`` -> its rocksdict
    ``Rdict`` in raw mode) from after the offset its database persisted under
    ``offset_key`` to the end of the log as it is now, with ``consumer`` (a started
    aiokafka consumer outside any group). Returns the number of records written."""
    from rocksdict import WriteBatch

    tps = list(dbs)
    consumer.assign(tps)
    firsts = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    left = set()
    for tp, db in dbs.items():
        raw = db.get(offset_key)
        start = firsts[tp] if raw is None else max(firsts[tp], int(raw) + 1)
        consumer.seek(tp, start)
        if start < ends[tp]:
            left.add(tp)
        else:
            consumer.pause(tp)
    written, quiet_since = 0, time.monotonic()
    try:
        while left:
            fetched = await consumer.getmany(*left, timeout_ms=1_000,
                                             max_records=FETCH_RECORDS)
            if not fetched:
                if time.monotonic() - quiet_since > STALL_SECONDS:
                    log.warning("bulk restore: nothing fetched from %s for %.0f s; "
                                "faust's recovery reads the rest", sorted(left),
                                STALL_SECONDS)
                    break
                continue
            quiet_since = time.monotonic()
            for tp, records in fetched.items():
                end, last = ends[tp], None
                batch = WriteBatch(raw_mode=True)
                for r in records:
                    if r.offset >= end:
                        break
                    if r.value is None:
                        batch.delete(r.key)
                    else:
                        batch.put(r.key, r.value)
                    last = r.offset
                    written += 1
                if last is None:
                    continue
                batch.put(offset_key, str(last).encode())
                dbs[tp].write(batch)
                if last + 1 >= end:
                    left.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.assign([])
    return written


async def new_consumer(client_options: Mapping[str, Any]) -> Any:
    """A started aiokafka consumer outside any group, with large fetches."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None,
                                fetch_max_bytes=64 * 2**20,
                                max_partition_fetch_bytes=32 * 2**20, **client_options)
    await consumer.start()
    return consumer


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
        if not mine or generation_id != self.app.consumer_generation_id:
            return  # nothing of ours, or rebalanced again: the next assignment restores
        began = time.monotonic()
        log.info("restoring %s partitions %s in bulk from the changelog",
                 table.changelog_topic.get_topic_name(), [tp.partition for tp in mine])
        consumer = _CONSUMERS.get(self.app)
        if consumer is None:
            consumer = _CONSUMERS[self.app] = await new_consumer(client)
        n = await catch_up(consumer, {_tp(tp): self._db_for_partition(tp.partition)
                                      for tp in mine}, self.offset_key)
        if n:
            took = time.monotonic() - began
            log.info("restored %d changelog records of %s in %.1f s (%.0f/s)", n,
                     table.changelog_topic.get_topic_name(), took, n / max(took, 1e-9))


def _tp(tp: Any) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(tp.topic, tp.partition)
