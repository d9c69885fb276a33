"""Labels (or online outcomes) larger than memory: on disk by a hash of the event id,
looked up a part at a time.

(A labels file, or the labels topic read lazily: :func:`~streams.replay.sources.label_chunks`.)

A training set joins each event with its first label (by event id; the label's entity
is not consulted, as in memory). When the labels file is large against
``--memory-budget``, :class:`SpilledLabels` reads it in chunks
(:func:`~streams.replay.sources.iter_labels_file`, the same parsing) and appends each
label to one of ``parts`` Arrow IPC files by a hash of its event id, in file order, so
every label of an event is in one part and the first one in it is the file's first.
:meth:`SpilledLabels.first_for` answers a frame of rows: the parts its event ids fall in
are read one at a time (the last one kept), each reduced to its first label per event.
Memory: one part of the labels, not all of them.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

#: Bytes a label costs in memory for each byte of the file, about (text ids in pandas).
MEMORY_PER_FILE_BYTE = 3
#: Share of the memory budget one part of the labels may take.
BUDGET_SHARE = 8


def label_parts(path: str | Path, memory_budget_bytes: int) -> int:
    """How many parts a labels file is cut in to stay within the budget (1: in memory).

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
    ...     _ = f.write(b"x" * 3_000_000); f.flush()
    ...     label_parts(f.name, 64 << 20), label_parts(f.name, 1 << 30)
    (2, 1)
    """
    size = Path(path).stat().st_size * MEMORY_PER_FILE_BYTE
    return max(1, math.ceil(size / (memory_budget_bytes // BUDGET_SHARE)))


#: Bytes a label read from the labels topic costs in memory, about (a row of text ids).
BYTES_PER_TOPIC_LABEL = 300


def topic_label_parts(records: int, memory_budget_bytes: int) -> int:
    """:func:`label_parts` for ``records`` labels on the labels topic.

    >>> topic_label_parts(1_000, 1 << 30), topic_label_parts(10_000_000, 1 << 30)
    (1, 23)
    """
    size = records * BYTES_PER_TOPIC_LABEL
    return max(1, math.ceil(size / (memory_budget_bytes // BUDGET_SHARE)))


def _part_of(event_id: pd.Series | np.ndarray, parts: int) -> np.ndarray:
    hashed = pd.util.hash_array(np.asarray(event_id, dtype=object), categorize=True)
    return (hashed % np.uint64(parts)).astype(np.int64)


class SpilledLabels:
    """The first label of each event, on disk in ``parts`` files (see the module)."""

    def __init__(self, chunks: Iterable[pd.DataFrame], parts: int,
                 directory: str | None = None,
                 fields: dict[str, pa.DataType] | None = None) -> None:
        """``fields``: the columns kept beside ``event_id`` (default: ``label`` and, when
        the chunks have it, ``label_ts``); the online outcomes use their own."""
        self.parts = parts
        self._dir = tempfile.TemporaryDirectory(prefix="streambed-labels-", dir=directory)
        self.paths = [Path(self._dir.name) / f"labels-{p:04d}.arrows" for p in range(parts)]
        self.columns: list[str] = ["event_id", *(fields or {"label": pa.int64()})]
        self.rows = 0
        writers: dict[int, Any] = {}
        sinks: dict[int, Any] = {}
        schema = None
        try:
            for chunk in chunks:
                if schema is None:
                    kept = fields or {name: pa.int64() for name in ("label", "label_ts")
                                      if name in chunk.columns}
                    self.columns = ["event_id", *kept]
                    schema = pa.schema([("event_id", pa.string()), *kept.items()])
                self.rows += len(chunk)
                table = pa.Table.from_pandas(chunk[self.columns], schema=schema,
                                             preserve_index=False)
                part = _part_of(chunk["event_id"], parts)
                for p in np.unique(part).tolist():
                    if p not in writers:
                        sinks[p] = pa.OSFile(str(self.paths[p]), "wb")
                        writers[p] = pa.ipc.new_stream(sinks[p], schema)
                    writers[p].write_table(table.filter(pa.array(part == p)))
        finally:
            for p, writer in writers.items():
                writer.close()
                sinks[p].close()
        self.schema = schema or pa.schema([("event_id", pa.string()),
                                           *(fields or {"label": pa.int64()}).items()])
        self._cached: tuple[int, pd.DataFrame] | None = None

    def _part(self, p: int) -> pd.DataFrame:
        if self._cached is None or self._cached[0] != p:
            self._cached = None  # let the previous part go before reading the next
            if self.paths[p].exists():
                with pa.OSFile(str(self.paths[p]), "rb") as source:
                    frame = pa.ipc.open_stream(source).read_all().to_pandas()
            else:
                frame = self.schema.empty_table().to_pandas()
            self._cached = (p, frame.drop_duplicates("event_id", keep="first")
                            .set_index("event_id"))
        return self._cached[1]

    def first_for(self, event_id: pd.Series) -> pd.DataFrame:
        """The first label (and its time) of each of these events that has one, indexed
        by event id (as :class:`~streams.replay.history.RowFinisher` holds labels)."""
        part = _part_of(event_id, self.parts)
        found = []
        for p in np.unique(part).tolist():
            first = self._part(p)
            ids = event_id[part == p]
            found.append(first[first.index.isin(ids)])
        if not found:
            return self._part(0).iloc[:0]
        return pd.concat(found)

    def close(self) -> None:
        self._cached = None
        self._dir.cleanup()
