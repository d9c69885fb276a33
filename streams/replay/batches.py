"""History as Arrow record batches: event files (Parquet, CSV, JSONL) and Kafka records.

A :class:`RawBatch` holds a slice of the history as it was received, column by column:
a tabular file's columns as written (Parquet typed, CSV every cell as text, only an empty
cell null), or raw JSON values (JSONL lines, Kafka record values) with where each came
from. Nothing here judges a record: :mod:`streams.replay.checks` does, for a whole batch.

A batch can still give back any one record as the :class:`RawRecord` the scorer's
validator reads (:meth:`RawBatch.record`): the exact bytes of a JSON record, or a tabular
row typed by the config (as :func:`streams.replay.sources.read_events_file` always did).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from streams.config import EventSchema
from streams.replay.sources import (
    JSON_LINES,
    PARTITION_COLUMN,
    TABULAR,
    RawRecord,
    _fields,
    _kind,
    _missing,
    _typed,
    required_columns,
)

#: Rows per batch read from a file: large enough that per-batch costs vanish, small
#: enough that a batch is a few tens of MB.
BATCH_ROWS = 262_144

SourceKind = Literal["jsonl", "csv", "parquet", "kafka"]


@dataclass
class RawBatch:
    """A slice of the history, as received.

    ``table``: a tabular file's columns (``kind`` csv/parquet); ``values``: raw JSON
    records (jsonl/kafka), one binary cell each. ``position``: the line (JSONL, CSV),
    the 0-based row (Parquet) or the offset (Kafka) of each record; ``partition``: its
    Kafka partition (None for a file without a partition column: replay derives it from
    the entity key); ``timestamp_ms``: broker times (Kafka) or None (files).
    """

    kind: SourceKind
    position: np.ndarray
    table: pa.Table | None = None
    values: pa.Array | None = None
    partition: np.ndarray | None = None
    timestamp_ms: np.ndarray | None = None
    #: Arrival order across batches, when the source has one of its own (Kafka:
    #: partition and offset); otherwise records arrive in batch order.
    seq: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.position)

    def take(self, rows: np.ndarray) -> RawBatch:
        """The batch of the records at ``rows``."""
        index = pa.array(rows, pa.int64())

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return RawBatch(self.kind, self.position[rows],
                        table=None if self.table is None else self.table.take(index),
                        values=None if self.values is None else self.values.take(index),
                        partition=pick(self.partition), timestamp_ms=pick(self.timestamp_ms),
                        seq=pick(self.seq))

    def where(self, i: int) -> str:
        """Where record ``i`` came from, as :attr:`RawRecord.where` says it."""
        return where_of(self.kind, int(self.position[i]),
                        None if self.partition is None else int(self.partition[i]))

    def record(self, i: int, schema: EventSchema) -> RawRecord:
        """Record ``i`` as the scorer's validator reads it (bytes and position)."""
        partition = None if self.partition is None else int(self.partition[i])
        pos = int(self.position[i])
        if self.values is not None:
            raw = self.values[i].as_py()
            if self.kind == "kafka":
                assert self.timestamp_ms is not None
                return RawRecord(raw, partition, pos, int(self.timestamp_ms[i]))
            if self.kind == "parquet":
                return RawRecord(raw, partition, pos, None)
            return RawRecord(raw, partition, pos - 1, None, line=pos)
        assert self.table is not None
        obj = {}
        for name in self.table.column_names:
            cell = self.table.column(name)[i].as_py()
            if isinstance(cell, datetime):  # as pandas read it: a Timestamp
                cell = pd.Timestamp(cell)
            value = _typed(cell, _kind(schema, name))
            if not _missing(value):
                obj[name] = value
        line = pos if self.kind == "csv" else None
        offset = pos - 2 if self.kind == "csv" else pos
        return RawRecord(json.dumps(obj).encode(), partition, offset, None, line=line)


def where_of(kind: SourceKind, position: int, partition: int | None) -> str:
    """``line 7``, ``row 3`` or ``partition 1 offset 42``, as :attr:`RawRecord.where`."""
    if kind in ("jsonl", "csv"):
        return f"line {position}"
    if kind == "parquet":
        return f"row {position + 1}"
    return f"partition {partition} offset {position}"


class EventFile:
    """An events file read lazily in batches (:meth:`batches`); ``len`` counts records.

    Iterating gives :class:`RawRecord` one by one, for code that wants the scorer's
    per-record view (slow: replay itself reads :meth:`batches`).
    """

    def __init__(self, path: str | Path, schema: EventSchema | None,
                 batch_rows: int = BATCH_ROWS) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"events file not found: {self.path}")
        suffix = self.path.suffix.lower()
        if suffix not in JSON_LINES + TABULAR:
            raise ValueError(f"unknown events file type {suffix!r}: use .jsonl, .csv or "
                             f".parquet")
        self.kind: SourceKind = ("jsonl" if suffix in JSON_LINES
                                 else "csv" if suffix == ".csv" else "parquet")
        if self.kind != "jsonl" and schema is None:
            raise ValueError(f"reading {self.path} needs the config's event schema: its "
                             f"declared types say how to read each column")
        self.schema = schema
        self.batch_rows = batch_rows
        self._len: int | None = None
        if self.kind != "jsonl":
            assert schema is not None
            names = self._column_names()
            missing = [c for c in required_columns(schema) if c not in names]
            if missing:
                raise ValueError(f"events file {self.path} has no column(s) {missing}; "
                                 f"it has {names}")

    def _column_names(self) -> list[str]:
        if self.kind == "parquet":
            return self._parquet_columns()
        return list(self._csv_reader().schema.names)

    def _csv_reader(self) -> pa_csv.CSVStreamingReader:
        # Every cell as written: text, and only an empty cell is null.
        with self.path.open(newline="", encoding="utf-8-sig") as f:
            names = next(csv.reader(f), [])
        return pa_csv.open_csv(
            self.path,
            read_options=pa_csv.ReadOptions(block_size=32 << 20),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True,
                null_values=[""], quoted_strings_can_be_null=True))

    def rows_estimate(self) -> int:
        """How many records the file holds: exact for Parquet (or once counted), else
        the file's size over the mean length of its first lines (to size buckets)."""
        if self.kind == "parquet" or self._len is not None:
            return len(self)
        size = self.path.stat().st_size
        with self.path.open("rb") as f:
            head = f.read(4 << 20)
        lines = max(1, head.count(b"\n"))
        return len(head) and max(1, round(size * lines / len(head)))

    def __len__(self) -> int:
        if self._len is None:
            if self.kind == "parquet":
                self._len = pq.ParquetFile(self.path).metadata.num_rows
            else:
                self._len = sum(len(b) for b in self.batches())
        return self._len

    def __iter__(self) -> Iterator[RawRecord]:
        assert self.schema is not None or self.kind == "jsonl"
        for batch in self.batches():
            for i in range(len(batch)):
                yield batch.record(i, self.schema or EventSchema())

    def batches(self) -> Iterator[RawBatch]:
        """The file's records in file order, ``batch_rows`` at a time."""
        if self.kind == "jsonl":
            yield from _jsonl_batches(self.path, self.batch_rows)
            return
        assert self.schema is not None
        position = 0
        first = 2 if self.kind == "csv" else 0  # a CSV's first record is on line 2
        for table in self._tables():
            n = table.num_rows
            partition = None
            if (PARTITION_COLUMN in table.column_names
                    and PARTITION_COLUMN not in _fields(self.schema)):
                partition = _partition_column(table.column(PARTITION_COLUMN), self.path,
                                              position)
                table = table.drop_columns([PARTITION_COLUMN])
            yield RawBatch(self.kind, np.arange(first + position, first + position + n),
                           table=table, partition=partition)
            position += n

    def _parquet_columns(self) -> list[str]:
        """The file's columns but a pandas index written beside them (as pandas reads it)."""
        schema = pq.ParquetFile(self.path).schema_arrow
        index = (schema.pandas_metadata or {}).get("index_columns", [])
        return [n for n in schema.names if n not in index]

    def _tables(self) -> Iterator[pa.Table]:
        if self.kind == "parquet":
            columns = self._parquet_columns()
            for rb in parquet_reader(self.path).iter_batches(batch_size=self.batch_rows,
                                                             columns=columns):
                yield pa.Table.from_batches([rb])
            return
        for rb in self._csv_reader():
            yield pa.Table.from_batches([rb])


def parquet_reader(path: str | Path) -> pq.ParquetFile:
    """A Parquet file to read batch by batch in bounded memory: without Arrow's pre-buffer,
    whose cache keeps every row group read until the reader closes (measured: +30 MiB per
    1,000,000-row row group, so a 10M-event history's first pass grew by 300 MiB)."""
    return pq.ParquetFile(path, pre_buffer=False)


def _partition_column(column: pa.ChunkedArray, path: Path, before: int) -> np.ndarray:
    """A file's ``partition`` column as int64; refuses the file on a bad value."""
    values = column.to_pandas()
    numbers = values
    if not (pa.types.is_integer(column.type)):
        import pandas as pd

        numbers = pd.to_numeric(values.astype("str").str.strip(), errors="coerce")
    bad = numbers.isna().to_numpy() | (numbers.fillna(-1).to_numpy() < 0)
    if not bad.any():
        whole = numbers.to_numpy(dtype=np.float64)
        bad = whole != np.floor(whole)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"events file {path}: row {before + i + 1}: partition "
                         f"{values.iloc[i]!r} is not a partition number")
    return numbers.to_numpy(dtype=np.int64)


def _jsonl_batches(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    """Non-blank lines of a JSONL file as raw values, with their 1-based line numbers."""
    with path.open("rb") as f:
        values: list[bytes] = []
        lines: list[int] = []
        for number, line in enumerate(f, start=1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            values.append(line)
            lines.append(number)
            if len(values) >= batch_rows:
                yield RawBatch("jsonl", np.asarray(lines, dtype=np.int64),
                               values=pa.array(values, pa.binary()))
                values, lines = [], []
        if values:
            yield RawBatch("jsonl", np.asarray(lines, dtype=np.int64),
                           values=pa.array(values, pa.binary()))


def records_batch(records: list[RawRecord]) -> RawBatch:
    """Records already read one by one (a list of :class:`RawRecord`) as one batch."""
    kafka = bool(records) and records[0].timestamp_ms is not None
    partitions = [r.partition for r in records]
    partition = None
    if any(p is not None for p in partitions):
        partition = np.asarray([-1 if p is None else p for p in partitions], dtype=np.int64)
    if kafka:
        return RawBatch("kafka", np.asarray([r.offset for r in records], dtype=np.int64),
                        values=pa.array([r.value for r in records], pa.binary()),
                        partition=partition,
                        timestamp_ms=np.asarray([r.timestamp_ms or 0 for r in records],
                                                dtype=np.int64))
    if all(r.line is not None for r in records):
        return RawBatch("jsonl", np.asarray([r.line for r in records], dtype=np.int64),
                        values=pa.array([r.value for r in records], pa.binary()),
                        partition=partition)
    return RawBatch("parquet", np.asarray([r.offset for r in records], dtype=np.int64),
                    values=pa.array([r.value for r in records], pa.binary()),
                    partition=partition)
