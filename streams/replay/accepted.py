"""The first pass over a history: batches in, accepted events out, every rejection counted.

:class:`Acceptance` reads a source batch by batch (:func:`batches_of`), judges each batch
with the scorer's rules (:class:`~streams.replay.checks.BatchValidator`), gives every
record its Kafka partition (a file's from the entity key, as Kafka's default partitioner
would) and its arrival position ``_seq``, and, for arrival order, takes out the events the
worker rejects as late. The lateness rule is the only state carried from batch to batch:
the watermark of each partition (:class:`Watermarks`). Memory is one batch at a time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from streams.config import Config
from streams.replay.batches import BATCH_ROWS, RawBatch, records_batch, where_of
from streams.replay.checks import BatchValidator
from streams.replay.keyhash import kafka_partitions
from streams.replay.sources import RawRecord
from streams.replay.times import format_ms

#: Rejected records kept as examples, per reason.
EXAMPLES_PER_REASON = 2


@dataclass(frozen=True, slots=True)
class Rejected:
    """One rejected record: why, the validator's detail, and where it was."""

    reason: str
    detail: str
    where: str

    def __str__(self) -> str:
        return f"{self.reason} at {self.where}: {self.detail}"


#: Rejections held before they are handed to the rejects sink (bounded memory).
REJECTS_HELD = 10_000


@dataclass
class Tally:
    """What the first pass saw: records received, rejections by reason, a few examples,
    and (when asked for) every rejection with where it was: held in ``rejects``, and
    handed to ``sink`` (when given) every :data:`REJECTS_HELD` and at :meth:`flush`."""

    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[Rejected] = field(default_factory=list)
    rejects: list[Rejected] | None = None
    sink: Callable[[list[Rejected]], None] | None = None

    def reject(self, reason: str, detail: str, where: str) -> None:
        self.rejected[reason] += 1
        if self.rejected[reason] <= EXAMPLES_PER_REASON:
            self.examples.append(Rejected(reason, detail, where))
        if self.rejects is not None:
            self.rejects.append(Rejected(reason, detail, where))
            if self.sink is not None and len(self.rejects) >= REJECTS_HELD:
                self.flush()

    def flush(self) -> None:
        """Hand the rejections held to the sink (if any)."""
        if self.sink is not None and self.rejects:
            self.sink(self.rejects)
            self.rejects = []


def batches_of(source: Any) -> Iterator[RawBatch]:
    """A source's batches: an object with ``batches()`` (files, topics), or records one by
    one (:class:`RawRecord`), gathered into batches."""
    if hasattr(source, "batches"):
        yield from source.batches()
        return
    chunk: list[RawRecord] = []
    for rec in source:
        chunk.append(rec)
        if len(chunk) >= BATCH_ROWS:
            yield records_batch(chunk)
            chunk = []
    if chunk:
        yield records_batch(chunk)


class Watermarks:
    """Each partition's watermark, carried across batches in arrival order.

    :meth:`late` marks a batch's late events exactly as a per-partition
    :class:`~features.watermark.Watermark` would, one event at a time: a late event lies
    below its watermark, so the running maximum over every event is the watermark.

    >>> w = Watermarks(1_000)
    >>> w.late(np.array([5_000, 3_000]), np.array([0, 0]))[0].tolist()
    [False, True]
    >>> w.late(np.array([3_999, 4_000]), np.array([0, 1]))[0].tolist()
    [True, False]
    """

    def __init__(self, allowed_lateness_ms: int) -> None:
        self.allowed_lateness_ms = allowed_lateness_ms
        self.marks: dict[int, int] = {}

    def late(self, ts: np.ndarray, partition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which events are late, the watermark each met: the running maximum)."""
        if len(ts) == 0:
            return np.zeros(0, dtype=bool), ts
        running = pd.Series(ts).groupby(partition, sort=False).cummax().to_numpy()
        if self.marks:
            carried = pd.Series(partition).map(self.marks).fillna(np.iinfo(np.int64).min)
            running = np.maximum(running, carried.to_numpy(dtype=np.int64))
        last = pd.Series(running).groupby(partition, sort=False).max()
        self.marks.update({int(p): int(m) for p, m in last.items()})
        return ts < running - self.allowed_lateness_ms, running


class Acceptance:
    """The first pass (see the module docstring); ``tally`` holds what it rejected."""

    def __init__(self, config: Config, *, drop_late: bool, keep_rejects: bool = False,
                 progress: bool = False,
                 rejects_sink: Callable[[list[Rejected]], None] | None = None) -> None:
        self.config = config
        self.validator = BatchValidator(config.event)
        self.watermarks = Watermarks(config.event.allowed_lateness_ms) if drop_late else None
        self.tally = Tally(rejects=[] if keep_rejects else None, sink=rejects_sink)
        self.progress = progress
        self.wall_ms = time.time_ns() // 1_000_000
        self._seq = 0

    def frames(self, source: Iterable[RawRecord] | Any) -> Iterator[pd.DataFrame]:
        """Accepted events of each batch: the validator's columns and ``_partition``,
        ``_seq`` (arrival position), ``_pos`` (line, row or offset)."""
        from tqdm import tqdm

        with tqdm(disable=not self.progress, unit="rec", desc="read") as bar:
            for batch in batches_of(source):
                yield self._accept(batch)
                bar.update(len(batch))

    def _accept(self, batch: RawBatch) -> pd.DataFrame:
        tally = self.tally
        tally.received += len(batch)
        checked = self.validator.check(batch, self.wall_ms)
        for i, reason, detail in checked.rejected:
            tally.reject(reason, detail, batch.where(i))
        frame = checked.frame
        index = frame.pop("_index").to_numpy()
        frame["_partition"] = self._partitions(batch, index, frame["entity_id"])
        frame["_seq"] = self._seq + index if batch.seq is None else batch.seq[index]
        frame["_pos"] = batch.position[index]
        self._seq += len(batch)
        if self.config.event.group_field != "group" and \
                self.config.event.group_field in frame.columns:
            frame = frame.drop(columns=[self.config.event.group_field])
        if self.watermarks is None or len(frame) == 0:
            return frame
        late, mark = self.watermarks.late(frame["ts"].to_numpy(),
                                          frame["_partition"].to_numpy())
        if late.any():
            self._late(batch.kind, frame, late, mark)
            frame = frame[~late].reset_index(drop=True)
        return frame

    def _partitions(self, batch: RawBatch, index: np.ndarray,
                    entity: pd.Series) -> np.ndarray:
        given = None if batch.partition is None else batch.partition[index]
        if given is not None and (given >= 0).all():
            return given.astype(np.int64)
        derived = kafka_partitions(pa.array(entity, pa.string()),
                                   self.config.topics.partitions)
        return derived if given is None else np.where(given >= 0, given, derived)

    def _late(self, kind: Any, frame: pd.DataFrame, late: np.ndarray,
              mark: np.ndarray) -> None:
        lateness = self.config.event.allowed_lateness_ms
        field_name = self.config.event.time_field
        rows = np.flatnonzero(late)
        unexplained = 0
        if self.tally.rejects is None:  # details only for the examples
            room = max(0, EXAMPLES_PER_REASON - self.tally.rejected["late"])
            unexplained = max(0, len(rows) - room)
            rows = rows[:room]
        ts, part, pos = (frame[c].to_numpy() for c in ("ts", "_partition", "_pos"))
        for i in rows.tolist():
            t, m = int(ts[i]), int(mark[i])
            self.tally.reject("late", (
                f"{field_name}={t} ({format_ms(t)}) is {(m - t) / 1000:g}s behind the "
                f"watermark of partition {int(part[i])} ({format_ms(m)}); allowed lateness "
                f"is {lateness / 1000:g}s"),
                where_of(kind, int(pos[i]), int(part[i])))
        self.tally.rejected["late"] += unexplained
