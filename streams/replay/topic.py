"""A Kafka topic read as Arrow batches, with aiokafka's ``getmany`` in large fetches.

:class:`TopicHistory` fixes, when made, where each partition's read starts (the first
offset whose broker timestamp is at or after ``from_broker_ms``, or the beginning) and
ends (the end offsets of that moment); :meth:`TopicHistory.batches` then fetches up to
:data:`FETCH_RECORDS` records at a time (64 MiB per fetch, 8 MiB per partition) and hands
their values to the column-wise validator as one binary column: no Python dict or JSON
decode per record. Records keep their partition, offset and broker timestamp; each
partition's records come in offset order (partitions interleave as the broker answers).

With ``until_ms``, a partition's read ends once its watermark passes ``until_ms`` plus the
allowed lateness (:func:`stop_index`): from there on every record before ``until_ms`` would
be late, as the worker judged it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.config import Config
from streams.kafka_clients import aiokafka_options
from streams.replay.batches import RawBatch
from streams.replay.sources import RawRecord

#: Records asked for per ``getmany``: one batch for the validator.
FETCH_RECORDS = 200_000
#: Fetch sizes that let any record the broker accepts through, in large fetches.
FETCH_LIMITS = {"max_partition_fetch_bytes": 8 << 20, "fetch_max_bytes": 64 << 20}
#: Where Kafka record positions go in a batch's ``seq``: partition above, offset below.
OFFSET_BITS = 40


class TopicHistory:
    """The records of one topic between fixed start and end offsets (see the module)."""

    def __init__(self, config: Config, topic: str, *, from_broker_ms: int | None = None,
                 until_ms: int | None = None, progress: bool = False,
                 timeout_seconds: float = 120.0) -> None:
        self.config, self.topic = config, topic
        self.until_ms, self.progress = until_ms, progress
        self.timeout_seconds = timeout_seconds
        self.starts, self.ends = _run(self._bounds(from_broker_ms))
        self._len: int | None = None

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(**aiokafka_options(self.config), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                **FETCH_LIMITS)

    async def _started(self) -> AIOKafkaConsumer:
        consumer = self._consumer()  # inside the loop that runs it
        await consumer.start()
        return consumer

    async def _bounds(self, from_broker_ms: int | None) -> tuple[dict[int, int],
                                                                 dict[int, int]]:
        consumer = await self._started()
        try:
            # What ``consumer.topics()`` reads, keeping the partitions it leaves behind.
            cluster = await consumer._client.fetch_all_metadata()
            parts = cluster.partitions_for_topic(self.topic)
            if not parts:
                raise ValueError(f"topic {self.topic!r} does not exist on "
                                 f"{self.config.broker}")
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            if from_broker_ms is not None:
                found = await consumer.offsets_for_times(
                    {tp: max(0, from_broker_ms) for tp in tps})
                starts = {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}
            return ({tp.partition: starts[tp] for tp in tps},
                    {tp.partition: ends[tp] for tp in tps})
        finally:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer,
                      tps: dict[int, TopicPartition]) -> None:
        consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            consumer.seek(tp, self.starts[p])

    def rows_estimate(self) -> int:
        return sum(max(0, self.ends[p] - self.starts[p]) for p in self.ends)

    def __len__(self) -> int:
        """The records a read gives (each partition stopped where ``until_ms`` ends it)."""
        if self._len is None:
            self._len = sum(len(batch) for batch in self.batches())
        return self._len

    def __iter__(self) -> Iterator[RawRecord]:
        for batch in self.batches():
            for i in range(len(batch)):
                yield batch.record(i, self.config.event)

    def batches(self) -> Iterator[RawBatch]:
        """Fetched records as batches, until every partition reached its end."""
        loop = asyncio.new_event_loop()
        try:
            consumer = loop.run_until_complete(self._started())
            try:
                count = 0
                for batch in self._fetch(loop, consumer):
                    count += len(batch)
                    yield batch
                self._len = count
            finally:
                loop.run_until_complete(consumer.stop())
        finally:
            loop.close()

    def _fetch(self, loop: asyncio.AbstractEventLoop,
               consumer: AIOKafkaConsumer) -> Iterator[RawBatch]:
        from tqdm import tqdm

        from streams.replay.checks import BatchValidator

        tps = {p: TopicPartition(self.topic, p) for p in self.ends}
        remaining = {p for p in tps if self.starts[p] < self.ends[p]}
        loop.run_until_complete(self._assign(consumer, tps))
        stop = None if self.until_ms is None else Stop(self.config, self.until_ms)
        deadline = time.monotonic() + self.timeout_seconds
        with tqdm(total=self.rows_estimate(), disable=not self.progress, unit="rec",
                  desc=self.topic) as bar:
            while remaining and time.monotonic() < deadline:
                fetched = loop.run_until_complete(consumer.getmany(
                    *(tps[p] for p in remaining), timeout_ms=500,
                    max_records=FETCH_RECORDS))
                parts: list[RawBatch] = []
                for tp, msgs in fetched.items():
                    p = tp.partition
                    if p not in remaining or not msgs:
                        continue
                    batch = _batch(msgs, p, self.ends[p])
                    done = len(batch) < len(msgs) or msgs[-1].offset + 1 >= self.ends[p]
                    if stop is not None and len(batch):
                        cut = stop.index(batch, BatchValidator)
                        if cut is not None:
                            batch, done = batch.take(np.arange(cut)), True
                    if done:
                        remaining.discard(p)
                    if len(batch):
                        parts.append(batch)
                for batch in parts:
                    bar.update(len(batch))
                    yield batch
        if remaining:
            raise TimeoutError(f"reading {self.topic!r} did not finish in "
                               f"{self.timeout_seconds:.0f}s")


def _batch(msgs: list[Any], partition: int, end: int) -> RawBatch:
    """Fetched records of one partition (those before ``end``) as a batch."""
    offsets = np.fromiter((m.offset for m in msgs), np.int64, len(msgs))
    keep = int(np.searchsorted(offsets, end))
    msgs = msgs[:keep]
    return RawBatch(
        "kafka", offsets[:keep],
        values=pa.array([m.value or b"" for m in msgs], pa.binary()),
        partition=np.full(keep, partition, dtype=np.int64),
        timestamp_ms=np.fromiter((m.timestamp for m in msgs), np.int64, keep),
        seq=(np.int64(partition) << OFFSET_BITS) + offsets[:keep])


class Stop:
    """Where a partition's read ends for ``until_ms`` (see the module docstring):
    records the validator rejects do not move the watermark."""

    def __init__(self, config: Config, until_ms: int) -> None:
        self.config = config
        self.end_ms = until_ms + config.event.allowed_lateness_ms
        self.watermarks: dict[int, int] = {}
        self._validator: Any = None

    def index(self, batch: RawBatch, validator_type: Any) -> int | None:
        """The first record of ``batch`` (one partition) past the end, or None."""
        if self._validator is None:
            self._validator = validator_type(self.config.event)
        checked = self._validator.check(batch, time.time_ns() // 1_000_000)
        rows = checked.frame["_index"].to_numpy()
        ts = checked.frame["ts"].to_numpy()
        p = int(batch.partition[0]) if batch.partition is not None else 0
        mark = np.maximum.accumulate(ts) if len(ts) else ts
        if p in self.watermarks and len(mark):
            mark = np.maximum(mark, self.watermarks[p])
        past = np.flatnonzero(mark >= self.end_ms)
        if len(mark):
            self.watermarks[p] = int(mark[-1])
        return int(rows[past[0]]) if len(past) else None


def _run(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
