"""Replay in bounded memory: two passes, the history spilled to disk by entity in between.

1. Read the source in batches (:class:`~streams.replay.accepted.Acceptance`): validate
   column by column, apply the lateness rule with each partition's watermark carried from
   batch to batch, and append the accepted events to one spill file per entity bucket
   (Arrow IPC on disk, :class:`Spill`): an external partition of the history by entity.
2. Replay each bucket alone (:func:`~streams.replay.partition.replay_partition`): all of an
   entity's events are in one bucket, so its features are exactly those of one replay of
   everything. Rows go to the output as they come (a Parquet row group per bucket).

The number of buckets comes from ``memory_budget_bytes`` (:func:`plan_buckets`): a bucket
holds as many events as replaying them in memory can afford after what the process
already uses (:func:`bucket_capacity`). When the whole history fits, there is one bucket,
no spill, and the rows come out in arrival order; with several, bucket by bucket (each in
arrival order). A history larger than planned starts spilling when it passes the
capacity; a bucket larger than the capacity is cut again, and an entity too large for a
bucket is replayed in chunks with its feature state carried
(:mod:`streams.replay.chunked`), so no part of the replay holds more than a bucket.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from streams.config import Config
from streams.replay.accepted import Acceptance, Rejected
from streams.replay.chunked import BucketReplay, Cuts
from streams.replay.partition import Order, entity_bucket, replay_partition

#: Default bound on the replay process's resident memory (``--memory-budget``).
DEFAULT_MEMORY_BUDGET = 1 << 30
#: Peak bytes one accepted event costs while its bucket is replayed (the frame, the
#: features, the kernels' index arrays, the output row group): measured on the quickstart
#: features (bench/replay_bench.py), with room to spare.
BYTES_PER_EVENT = 1_400
#: Memory kept free of buckets: a batch of the first pass, and the allocator's slack.
HEADROOM_BYTES = 160 << 20


def rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc``; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def reset_peak_rss() -> None:
    """Start a new peak-RSS window: Linux's high-water mark (``VmHWM``) reset to now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss() -> int:
    """This process's peak resident set size since :func:`reset_peak_rss` (or since it
    started): ``VmHWM`` from ``/proc`` (0 where unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def plan_buckets(events: int, memory_budget_bytes: int, used_bytes: int | None = None) -> int:
    """How many entity buckets keep a replay of ``events`` events within the budget.

    >>> plan_buckets(1_000, 1 << 30, used_bytes=200 << 20)
    1
    >>> plan_buckets(10_000_000, 1 << 30, used_bytes=200 << 20)
    21
    """
    used = rss_bytes() if used_bytes is None else used_bytes
    room = memory_budget_bytes - used - HEADROOM_BYTES
    if room <= 0:
        raise ValueError(f"--memory-budget {memory_budget_bytes >> 20} MiB leaves nothing "
                         f"for the replay: the process already uses {used >> 20} MiB "
                         f"(give at least {(used + HEADROOM_BYTES >> 20) + 64} MiB)")
    return max(1, math.ceil(events * BYTES_PER_EVENT / room))


def spill_schema(config: Config) -> pa.Schema:
    """The columns of accepted events on disk: core fields, attributes, positions."""
    types = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(),
             "str": pa.string()}
    fields = [("event_id", pa.string()), ("entity_id", pa.string()), ("ts", pa.int64()),
              ("group", pa.string())]
    for name, attr in config.event.attributes.items():
        if name not in ("group", config.event.group_field):
            fields.append((name, types[attr.type]))
    fields += [("_partition", pa.int64()), ("_seq", pa.int64()), ("_pos", pa.int64())]
    return pa.schema(fields)


class Spill:
    """Accepted events on disk, one Arrow IPC stream per bucket (a temporary directory,
    removed on close). Rows are appended in arrival order and read back in it."""

    def __init__(self, config: Config, buckets: int, directory: str | None = None,
                 salt: int = 0, prefix: str = "streambed-replay-") -> None:
        self.config = config
        self.buckets = buckets
        self.salt = salt
        self.schema = spill_schema(config)
        self._dir = tempfile.TemporaryDirectory(prefix=prefix, dir=directory)
        self.paths = [Path(self._dir.name) / f"bucket-{b:05d}.arrows" for b in range(buckets)]
        self.counts = np.zeros(buckets, dtype=np.int64)
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        self._sinks: dict[int, Any] = {}

    @property
    def directory(self) -> str:
        return self._dir.name

    def add(self, frame: pd.DataFrame | pa.Table, keys: np.ndarray | None = None) -> None:
        """Append rows to their buckets: ``keys`` (a bucket per row), or by entity hash."""
        if keys is None:
            entity = (frame["entity_id"].to_numpy() if isinstance(frame, pd.DataFrame)
                      else frame.column("entity_id").to_numpy(zero_copy_only=False))
            keys = entity_bucket(entity, self.buckets, self.salt)
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(
            frame[self.schema.names], schema=self.schema, preserve_index=False)
        order = np.argsort(keys, kind="stable")
        table = table.take(pa.array(order))
        bounds = np.searchsorted(keys[order], np.arange(self.buckets + 1))
        for b in np.flatnonzero(np.diff(bounds)).tolist():
            writer = self._writers.get(b)
            if writer is None:
                sink = self._sinks[b] = pa.OSFile(str(self.paths[b]), "wb")
                writer = self._writers[b] = pa.ipc.new_stream(sink, self.schema)
            writer.write_table(table.slice(int(bounds[b]), int(bounds[b + 1] - bounds[b])))
            self.counts[b] += int(bounds[b + 1] - bounds[b])

    def finish_writing(self) -> None:
        for b, writer in self._writers.items():
            writer.close()
            self._sinks[b].close()

    def spilled_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths if p.exists())

    def tables(self, bucket: int) -> Iterator[pa.Table]:
        """A bucket's rows in arrival order, a written piece at a time (as Arrow)."""
        if not self.counts[bucket]:
            return
        with pa.OSFile(str(self.paths[bucket]), "rb") as source:
            for batch in pa.ipc.open_stream(source):
                yield pa.Table.from_batches([batch])

    def read(self, bucket: int) -> pd.DataFrame | None:
        """A bucket's events in arrival order (None when it has none); the file goes."""
        if not self.counts[bucket]:
            return None
        events = read_spilled(self.paths[bucket], self.config)
        self.paths[bucket].unlink()
        return events

    def close(self) -> None:
        self._dir.cleanup()

    @classmethod
    def of_file(cls, config: Config, path: str | Path, events: int,
                directory: str | None = None) -> Spill:
        """One bucket written elsewhere (a Dask task's part, ``events`` rows in arrival
        order), read as bucket 0 of a spill: so a task can cut it as the local engine
        cuts a bucket (:class:`~streams.replay.chunked.BucketReplay`). Closing the spill
        does not remove ``path`` (reading it whole does, as for any bucket)."""
        spill = cls(config, 1, directory)
        spill.paths = [Path(path)]
        spill.counts[0] = events
        return spill


def read_spilled(path: str | Path, config: Config) -> pd.DataFrame:
    """One spilled bucket's file, whole, as the frame the first pass made."""
    with pa.OSFile(str(path), "rb") as source:
        return from_spill(pa.ipc.open_stream(source).read_all(), config)


def from_spill(table: pa.Table, config: Config) -> pd.DataFrame:
    """Spilled events back as the frame the first pass made (same dtypes)."""
    from streams.replay.checks import _as_declared

    out: dict[str, Any] = {}
    for name in table.column_names:
        column = table.column(name)
        if name in config.event.attributes:
            attr = config.event.attributes[name]
            if attr.type == "int":
                out[name] = column.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
            else:
                out[name] = _as_declared(column.to_pandas(), attr)
        elif pa.types.is_string(column.type):
            out[name] = column.to_pandas()
        else:
            out[name] = column.to_numpy()
    return pd.DataFrame(out)


@dataclass
class PartRows:
    """What was made of the rows of one bucket: kept rows, and how many were not."""

    frame: pd.DataFrame
    outside: int = 0


@dataclass
class Replayed:
    """The outcome of :func:`replay_parts` once its iterator is exhausted."""

    acceptance: Acceptance
    buckets: int = 1
    spilled_bytes: int = 0
    peak_rss_bytes: int = 0
    #: How the buckets were cut further (buckets replayed, hot entities).
    cuts: Cuts = field(default_factory=Cuts)
    #: Peak RSS of the first pass (read, validate, spill), and of each spilled bucket's
    #: replay and write, as (events in the bucket, peak bytes) in the order replayed:
    #: the evidence that nothing held grows with the history (a late bucket peaks as
    #: high as an early one of the same size).
    first_pass_peak_bytes: int = 0
    bucket_peaks: list[tuple[int, int]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def bucket_capacity(memory_budget_bytes: int, used_bytes: int | None = None) -> int:
    """How many events one bucket may hold to be replayed at once within the budget.

    >>> bucket_capacity(1 << 30, used_bytes=200 << 20)
    497324
    """
    used = rss_bytes() if used_bytes is None else used_bytes
    room = memory_budget_bytes - used - HEADROOM_BYTES
    if room <= 0:
        plan_buckets(1, memory_budget_bytes, used)  # raises, saying what is needed
    return max(1, room // BYTES_PER_EVENT)


def replay_parts(config: Config, source: Any, *, order: Order = "arrival",
                 attributes: list[str] | None = None, events_estimate: int | None = None,
                 memory_budget_bytes: int | None = None, keep_rejects: bool = False,
                 progress: bool = False, spill_dir: str | None = None,
                 buckets: int | None = None, bucket_events: int | None = None,
                 rejects_sink: Callable[[list[Rejected]], None] | None = None,
                 ) -> tuple[Replayed, Iterator[pd.DataFrame]]:
    """The replayed rows of ``source``, part by part (see the module docstring).

    Returns the outcome (filled in as the iterator runs: counts, buckets used, peak RSS)
    and an iterator of frames, each the rows of one bucket (or of a chunk of a hot
    entity) with a ``_seq`` column (the arrival position in the whole history).
    ``buckets`` overrides the plan and ``bucket_events`` the events a bucket may hold
    (tests use them to cut a small history in many parts and chunks). With
    ``keep_rejects``, ``rejects_sink`` receives the rejections as they come (a few
    thousand at a time; the rest when the first pass ends).
    """
    acceptance = Acceptance(config, drop_late=order == "arrival", keep_rejects=keep_rejects,
                            progress=progress, rejects_sink=rejects_sink)
    budget = memory_budget_bytes or DEFAULT_MEMORY_BUDGET
    capacity = bucket_events or bucket_capacity(budget)
    if buckets is None:
        buckets = 1 if events_estimate is None else plan_buckets(events_estimate, budget)
    outcome = Replayed(acceptance, buckets)
    cutter = BucketReplay(config, order, attributes, capacity, spill_dir, outcome.cuts)

    def observe() -> None:
        outcome.peak_rss_bytes = max(outcome.peak_rss_bytes, rss_bytes())

    def run() -> Iterator[pd.DataFrame]:
        spill = Spill(config, buckets, spill_dir) if buckets > 1 else None
        held: list[pd.DataFrame] = []
        held_rows = 0
        reset_peak_rss()
        try:
            for frame in acceptance.frames(source):
                if not len(frame):
                    continue
                if spill is None and held_rows + len(frame) > capacity:
                    # more than one bucket holds: spill what is held, and the rest
                    outcome.buckets = max(2, math.ceil(2 * (events_estimate or 0)
                                                       / capacity))
                    spill = Spill(config, outcome.buckets, spill_dir)
                    for piece in held:
                        spill.add(piece)
                    held, held_rows = [], 0
                if spill is None:
                    held.append(frame)
                    held_rows += len(frame)
                else:
                    spill.add(frame)
                observe()
            acceptance.tally.flush()
            if spill is None:
                events = pd.concat(held, ignore_index=True) if held else None
                del held[:]
                if events is not None and len(events):
                    outcome.cuts.buckets += 1
                    yield replay_partition(config, events, order=order,
                                           attributes=attributes)
                    observe()
                return
            spill.finish_writing()
            outcome.spilled_bytes = spill.spilled_bytes()
            outcome.first_pass_peak_bytes = peak_rss()
            for b in range(spill.buckets):
                events = int(spill.counts[b])
                reset_peak_rss()
                for rows in cutter.replay_spilled(spill, b):
                    observe()
                    yield rows
                if events:
                    outcome.bucket_peaks.append((events, peak_rss()))
            outcome.peak_rss_bytes = max(outcome.peak_rss_bytes,
                                         outcome.first_pass_peak_bytes,
                                         *(peak for _, peak in outcome.bucket_peaks))
        finally:
            if spill is not None:
                spill.close()

    return outcome, run()


class RowsWriter:
    """Output rows appended as they come: a Parquet row group per call, or CSV lines.

    The Parquet schema is the first frame's (a column null in all of it is text); only
    the ``dictionary`` columns (few distinct values: groups, categories) are dictionary
    encoded (ids and numbers gain nothing from it and cost half the write time).
    """

    def __init__(self, path: Path, dictionary: list[str] | None = None) -> None:
        self.path = path
        self.dictionary = dictionary or []
        self.rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._csv_started = False

    def write(self, frame: pd.DataFrame) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows += len(frame)
        if self.path.suffix.lower() in (".parquet", ".pq"):
            if self._schema is None:
                schema = pa.Schema.from_pandas(frame, preserve_index=False)
                for i, f in enumerate(schema):
                    if pa.types.is_null(f.type):
                        schema = schema.set(i, pa.field(f.name, pa.string()))
                self._schema = schema
                self._parquet = pq.ParquetWriter(
                    self.path, schema,
                    use_dictionary=[n for n in self.dictionary if n in schema.names])
            assert self._parquet is not None
            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
            self._parquet.write_table(table)
        else:
            frame.to_csv(self.path, mode="a" if self._csv_started else "w",
                         header=not self._csv_started, index=False)
            self._csv_started = True

    def close(self, empty: Callable[[], pd.DataFrame] | None = None) -> None:
        """Finish the file; with no rows written, write ``empty()`` (the header)."""
        if self.rows == 0 and empty is not None and self._parquet is None \
                and not self._csv_started:
            frame = empty()
            self.rows = -len(frame)  # keep the count at zero
            self.write(frame)
        if self._parquet is not None:
            self._parquet.close()
