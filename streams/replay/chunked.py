"""A history too large for one bucket: cut again, and hot entities replayed in chunks.

The bounded-memory replay (:mod:`streams.replay.pipeline`) spills the history by entity
bucket and replays a bucket at once with the vectorised kernels, which costs memory in
proportion to the bucket's events. When a bucket holds more events than the budget
affords (``capacity``), :func:`replay_spilled` cuts it:

- entities with more than half a bucket's worth of events are *hot*: each is replayed
  alone, chunk by chunk, in processing order (arrival order; or event-time order, after
  an external sort of its history on disk, :func:`time_sorted`), with its feature state
  carried from chunk to chunk (:class:`~features.offline.CarriedFeatures`: the online
  engine's state, bounded by the windows, never by the history). Exact, and as fast as
  the online engine (tens of thousands of events per second): the price of one entity
  larger than memory allows.
- the other entities are spilled again into smaller buckets by a hash with another key
  (``salt``), and each of those is replayed (cut again if it still does not fit).

Every row equals the row one replay of everything gives (property-tested over chunk
sizes, windows, lateness and a hot entity: tests/streams/test_replay_chunked.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from features.offline import CarriedFeatures
from streams.config import Config
from streams.replay.partition import Order, output_rows, replay_partition

if TYPE_CHECKING:
    from streams.replay.pipeline import Spill

#: Rows fed to the online engine at once (its input dicts cost ~1 KB per row); fewer
#: when a bucket holds fewer.
CHUNK_ROWS = 50_000
#: Rows per piece of a sorted run on disk (at most half a run): the merge holds one
#: piece per run.
RUN_PIECE_ROWS = 8_192
#: Cuts of one bucket before it is replayed as it is (hashes that keep colliding).
MAX_DEPTH = 8
#: The position of a row in a hot entity's history (arrival order): the sort's tiebreak.
ROW = "_row"


@dataclass
class Cuts:
    """What cutting cost: buckets replayed, hot entities, their events."""

    buckets: int = 0
    hot_entities: int = 0
    hot_events: int = 0


@dataclass
class BucketReplay:
    """How one spilled bucket is replayed (see the module docstring)."""

    config: Config
    order: Order
    attributes: list[str] | None
    capacity: int
    spill_dir: str | None = None
    cuts: Cuts | None = None

    def __post_init__(self) -> None:
        if self.cuts is None:
            self.cuts = Cuts()

    def replay_spilled(self, spill: Spill, bucket: int, depth: int = 0
                       ) -> Iterator[pd.DataFrame]:
        """The output rows of one bucket of ``spill``, a frame at a time."""
        assert self.cuts is not None
        n = int(spill.counts[bucket])
        if n == 0:
            return
        if n <= self.capacity or depth >= MAX_DEPTH:
            events = spill.read(bucket)
            assert events is not None
            self.cuts.buckets += 1
            yield replay_partition(self.config, events, order=self.order,
                                   attributes=self.attributes)
            return
        from streams.replay.pipeline import Spill

        counts = entity_counts(spill.tables(bucket))
        hot = counts.index[counts.to_numpy() > self.capacity // 2]
        cold_events = n - int(counts[hot].sum())
        parts = max(2, math.ceil(2 * cold_events / self.capacity)) if cold_events else 1
        cold = Spill(self.config, parts, self.spill_dir, salt=depth + 1)
        hot_spill = Spill(self.config, max(1, len(hot)), self.spill_dir)
        try:
            code = pd.Index(hot)
            for table in spill.tables(bucket):
                entity = table.column("entity_id").to_numpy(zero_copy_only=False)
                which = code.get_indexer(entity)
                is_hot = which >= 0
                if is_hot.any():
                    hot_spill.add(table.filter(pa.array(is_hot)), which[is_hot])
                if not is_hot.all():
                    cold.add(table.filter(pa.array(~is_hot)))
            spill.paths[bucket].unlink()
            cold.finish_writing()
            hot_spill.finish_writing()
            for b in range(cold.buckets):
                yield from self.replay_spilled(cold, b, depth + 1)
            for h in range(len(hot)):
                self.cuts.hot_entities += 1
                self.cuts.hot_events += int(hot_spill.counts[h])
                yield from self.replay_hot(hot_spill, h)
        finally:
            cold.close()
            hot_spill.close()

    def replay_hot(self, spill: Spill, bucket: int) -> Iterator[pd.DataFrame]:
        """One hot entity's rows, chunk by chunk, its feature state carried."""
        from streams.replay.pipeline import from_spill

        lateness = self.config.event.allowed_lateness_ms if self.order == "arrival" else 0
        carried = CarriedFeatures(self.config.features, lateness)
        chunk = min(CHUNK_ROWS, self.capacity)
        tables = rechunk(spill.tables(bucket), chunk)
        if self.order == "event-time":
            tables = rechunk(time_sorted(tables, self.capacity, spill.directory), chunk)
        for table in tables:
            if ROW in table.column_names:
                table = table.drop_columns([ROW])
            events = from_spill(table, self.config)
            yield output_rows(self.config, events, carried.chunk(events), self.attributes)


def entity_counts(tables: Iterator[pa.Table]) -> pd.Series:
    """Events per entity id over ``tables`` (read a piece at a time)."""
    total: pd.Series | None = None
    for table in tables:
        counts = pd.Series(table.column("entity_id").to_numpy(zero_copy_only=False)
                           ).value_counts()
        total = counts if total is None else total.add(counts, fill_value=0)
    return (pd.Series(dtype=np.int64) if total is None else total).astype(np.int64)


def rechunk(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows, in the same order, as tables of exactly ``rows`` (the last fewer).

    >>> t = pa.table({"x": list(range(7))})
    >>> [len(c) for c in rechunk(iter([t.slice(0, 3), t.slice(3)]), 2)]
    [2, 2, 2, 1]
    """
    held: list[pa.Table] = []
    count = 0
    for table in tables:
        held.append(table)
        count += len(table)
        while count >= rows:
            whole = pa.concat_tables(held)
            yield whole.slice(0, rows)
            rest = whole.slice(rows)
            held, count = ([rest] if len(rest) else []), len(rest)
    if count:
        yield pa.concat_tables(held)


def time_sorted(tables: Iterator[pa.Table], run_rows: int, directory: str
                ) -> Iterator[pa.Table]:
    """``tables`` (one history, in arrival order) in event-time order: a stable sort by
    ``ts`` (ties keep arrival order), external. Runs of ``run_rows`` rows are sorted in
    memory and written to ``directory``; they are then merged, holding one piece of
    each run at a time. Yields tables with a ``_row`` column (the arrival position).

    >>> import tempfile
    >>> t = pa.table({"ts": [5, 1, 5, 0, 3, 1]})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = pa.concat_tables(time_sorted(iter([t.slice(0, 4), t.slice(4)]), 2, d))
    >>> out.column("ts").to_pylist(), out.column("_row").to_pylist()
    ([0, 1, 1, 3, 5, 5], [3, 1, 5, 4, 0, 2])
    """
    import tempfile

    runs: list[str] = []
    start = 0
    sort_keys = [("ts", "ascending"), (ROW, "ascending")]
    with tempfile.TemporaryDirectory(prefix="runs-", dir=directory) as where:
        for table in rechunk(tables, run_rows):
            n = len(table)
            table = table.append_column(ROW, pa.array(np.arange(start, start + n)))
            start += n
            path = f"{where}/run-{len(runs):05d}.arrows"
            with pa.OSFile(path, "wb") as sink, \
                    pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table.sort_by(sort_keys),
                                   max_chunksize=max(1, min(RUN_PIECE_ROWS, run_rows // 2)))
            runs.append(path)
        yield from _merged(runs, sort_keys)


def _merged(runs: list[str], sort_keys: list[tuple[str, str]]) -> Iterator[pa.Table]:
    """Sorted runs merged: each round takes, from every run's piece in hand, the rows at
    or below the smallest of the pieces' last keys (so the run that piece came from is
    used up), and yields them sorted."""
    sources = [pa.OSFile(path, "rb") for path in runs]
    try:
        readers = [iter(pa.ipc.open_stream(source)) for source in sources]
        pieces: list[pa.Table | None] = [_next_piece(r) for r in readers]
        while any(p is not None for p in pieces):
            lasts = [(p.column("ts")[-1].as_py(), p.column(ROW)[-1].as_py())
                     for p in pieces if p is not None]
            bound_ts, bound_row = min(lasts)
            taken = []
            for i, piece in enumerate(pieces):
                if piece is None:
                    continue
                ts = piece.column("ts").to_numpy()
                row = piece.column(ROW).to_numpy()
                k = int(((ts < bound_ts) | ((ts == bound_ts) & (row <= bound_row))).sum())
                taken.append(piece.slice(0, k))
                rest = piece.slice(k)
                pieces[i] = rest if len(rest) else _next_piece(readers[i])
            yield pa.concat_tables(taken).sort_by(sort_keys)
    finally:
        for source in sources:
            source.close()


def _next_piece(reader: Iterator[pa.RecordBatch]) -> pa.Table | None:
    for batch in reader:
        if batch.num_rows:
            return pa.Table.from_batches([batch])
    return None
