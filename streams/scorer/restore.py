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

It runs inside faust's rebalance callback, so it has a deadline (:func:`bulk_restore`):
the offsets lookups and the fetch loop of every table of one rebalance share
``rebalance_timeout x DEADLINE_SHARE`` seconds (faust's ``broker_rebalance_timeout``, 60 s
by default: heartbeats go on during the callback, but if another rebalance begins the
worker must rejoin within that timeout or leave the group). A broker gone away, a
partition that cannot be fetched, or a restore too large for the time leaves the
databases at the last batch written, with its offset; faust's recovery reads the rest
from there. Nothing of it raises into the rebalance: an error is logged and left to
faust's recovery the same way. The consumer's stop at shutdown is bounded too
(aiokafka's ``stop`` could wait forever after a catch-up that fetched nothing).

Standby partitions are left to faust (they are read continuously as records come).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from faust.stores.rocksdb import Store

log = logging.getLogger(__name__)

#: faust-streaming's store URL scheme for :class:`RestoringStore` (see :func:`register`).
SCHEME = "streambed-rocksdb"
#: Records asked of the broker per fetch and written per RocksDB write batch.
FETCH_RECORDS = 20_000
#: The bulk restores of one rebalance (every table) take at most this share of faust's
#: ``broker_rebalance_timeout``; faust's recovery reads what is left.
DEADLINE_SHARE = 0.5
#: How long the restore consumer may take to stop at shutdown before it is left.
STOP_SECONDS = 10.0

#: The aiokafka client options (bootstrap servers, authentication) of each app's stores.
_CLIENTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
#: The consumer each app's stores share (started when first needed, then kept: it holds
#: no assignment between restores).
_CONSUMERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
#: Consumers whose start failed, being stopped (a reference keeps their task alive).
_STOPPING: set[asyncio.Task[bool]] = set()
#: Each app's current rebalance (generation id) and when its bulk restores must be done.
_DEADLINES: weakref.WeakKeyDictionary[Any, tuple[int, float]] = weakref.WeakKeyDictionary()


def register(app: Any, client_options: Mapping[str, Any]) -> str:
    """Make ``app``'s tables restore in bulk; returns the store URL to give the app."""
    import faust.stores

    faust.stores.STORES.aliases[SCHEME] = f"{__name__}:RestoringStore"
    _CLIENTS[app] = dict(client_options)

    @app.on_before_shutdown.connect
    async def stop_restore_consumer(app: Any, **kwargs: Any) -> None:
        consumer = _CONSUMERS.pop(app, None)
        if consumer is not None:
            await stop_within(consumer, STOP_SECONDS)

    return f"{SCHEME}://"


async def stop_within(consumer: Any, seconds: float) -> bool:
    """Stop an aiokafka consumer, waiting at most ``seconds``; False if it was left."""
    try:
        await asyncio.wait_for(consumer.stop(), seconds)
    except TimeoutError:
        log.warning("the bulk restore's consumer did not stop within %.0f s; left", seconds)
        return False
    return True


@dataclass(frozen=True)
class CatchUp:
    """What a bulk restore did: records written, and whether it reached every end."""

    records: int
    finished: bool


async def bulk_restore(consumer: Callable[[], Awaitable[Any]], dbs: Mapping[Any, Any],
                       offset_key: bytes, seconds: float) -> CatchUp:
    """:func:`catch_up` with the consumer ``consumer()`` gives (started), all of it within
    ``seconds``. Never raises but for cancellation: at the deadline, or on an error, what
    was written stays with its offset and faust's recovery reads the rest (logged)."""
    written = [0]
    what = sorted(f"{tp.topic}[{tp.partition}]" for tp in dbs)

    async def run() -> int:
        return await catch_up(await consumer(), dbs, offset_key, written)

    try:
        return CatchUp(await asyncio.wait_for(run(), seconds), True)
    except TimeoutError:
        log.warning("bulk restore of %s stopped at its deadline (%.1f s) after %d records; "
                    "faust's recovery reads the rest from the persisted offsets", what,
                    seconds, written[0])
    except Exception as exc:  # a broker gone, a partition that cannot be fetched, ...
        log.warning("bulk restore of %s stopped after %d records (%s: %s); faust's recovery "
                    "reads the rest from the persisted offsets", what, written[0],
                    type(exc).__name__, exc)
    return CatchUp(written[0], False)


async def catch_up(consumer: Any, dbs: Mapping[Any, Any], offset_key: bytes,
                   written: list[int] | None = None) -> int:
    """Write each changelog partition (an aiokafka ``TopicPartition`` -> its rocksdict
    ``Rdict`` in raw mode) from after the offset its database persisted under
    ``offset_key`` to the end of the log as it is now, with ``consumer`` (a started
    aiokafka consumer outside any group). Returns the number of records written, also
    kept in ``written[0]`` as it goes (what a caller that cancels it can report).

    No deadline of its own: :func:`bulk_restore` gives it one."""
    from rocksdict import WriteBatch

    if written is None:
        written = [0]
    tps = list(dbs)
    consumer.assign(tps)
    try:
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
        while left:
            fetched = await consumer.getmany(*left, timeout_ms=1_000,
                                             max_records=FETCH_RECORDS)
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
                    written[0] += 1
                if last is None:  # only records past the end: this partition is done
                    left.discard(tp)
                    consumer.pause(tp)
                    continue
                batch.put(offset_key, str(last).encode())
                dbs[tp].write(batch)
                if last + 1 >= end:
                    left.discard(tp)
                    consumer.pause(tp)
            # The end may lie past the last record: a transaction marker, or a tail the
            # log cleaner removed. The consumer's position passes them.
            for tp in [tp for tp in left if tp not in fetched]:
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.assign([])
    return written[0]


async def new_consumer(client_options: Mapping[str, Any]) -> Any:
    """A started aiokafka consumer outside any group, with large fetches. One whose start
    fails (or is cancelled at a deadline) is stopped in the background, bounded."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None,
                                fetch_max_bytes=64 * 2**20,
                                max_partition_fetch_bytes=32 * 2**20, **client_options)
    try:
        await consumer.start()
    except BaseException:
        task = asyncio.get_running_loop().create_task(stop_within(consumer, STOP_SECONDS))
        _STOPPING.add(task)
        task.add_done_callback(_STOPPING.discard)
        raise
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
        seconds = _deadline(self.app, generation_id, began) - began
        topic = table.changelog_topic.get_topic_name()
        if seconds <= 0:
            log.warning("no time left in this rebalance to restore %s partitions %s in bulk; "
                        "faust's recovery reads them", topic, [tp.partition for tp in mine])
            return
        log.info("restoring %s partitions %s in bulk from the changelog (within %.1f s)",
                 topic, [tp.partition for tp in mine], seconds)

        async def consumer() -> Any:
            if self.app not in _CONSUMERS:
                _CONSUMERS[self.app] = await new_consumer(client)
            return _CONSUMERS[self.app]

        done = await bulk_restore(consumer, {_tp(tp): self._db_for_partition(tp.partition)
                                             for tp in mine}, self.offset_key, seconds)
        if done.records:
            took = time.monotonic() - began
            log.info("restored %d changelog records of %s in %.1f s (%.0f/s)", done.records,
                     topic, took, done.records / max(took, 1e-9))


def _deadline(app: Any, generation_id: int, now: float) -> float:
    """When the bulk restores of this rebalance (generation) must be done, every table's
    together (see the module docstring)."""
    generation, deadline = _DEADLINES.get(app, (None, 0.0))
    if generation != generation_id:
        deadline = now + DEADLINE_SHARE * float(app.conf.broker_rebalance_timeout)
        _DEADLINES[app] = (generation_id, deadline)
    return deadline


def _tp(tp: Any) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(tp.topic, tp.partition)
