"""``streambed replay``'s output path: history → training-set files, in bounded memory.

:func:`replay_to_files` runs :func:`~streams.replay.pipeline.replay_parts` and writes its
rows as they come (:class:`~streams.replay.pipeline.RowsWriter`): one file, or one per
part of a ``--split``; with ``rejects`` a file of every rejected record (where, reason,
detail), written as they come. A ``--reference`` is built from at most
:data:`REFERENCE_ROWS` rows (a uniform sample beyond). Labels are held in memory, or on
disk by event id (:class:`~streams.replay.labels.SpilledLabels`, for a large labels
file or topic), and so are online outcomes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streams.config import Config
from streams.replay.accepted import Rejected
from streams.replay.history import RowFinisher, output_columns
from streams.replay.labels import SpilledLabels
from streams.replay.partition import Order
from streams.replay.pipeline import RowsWriter, replay_parts
from streams.replay.splits import TimeSplit, split_by_time


@dataclass
class FilesResult:
    """What a replay to files did: counts, where rows went, and what it cost."""

    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[Rejected] = field(default_factory=list)
    outside: int = 0
    rows: int = 0
    #: Rows per output part (the key None without a split).
    part_rows: dict[str | None, int] = field(default_factory=dict)
    label_too_late: dict[str, int] = field(default_factory=dict)
    in_gap: int = 0
    #: With online outcomes: rows that have a scored record.
    online_scored: int = 0
    buckets: int = 1
    spilled_bytes: int = 0
    peak_rss_bytes: int = 0
    #: Peak RSS of the first pass, and of each bucket's replay as (events, bytes):
    #: see :class:`~streams.replay.pipeline.Replayed`.
    first_pass_peak_bytes: int = 0
    bucket_peaks: list[tuple[int, int]] = field(default_factory=list)
    #: Entities too large for a bucket, replayed in chunks (and their events).
    hot_entities: int = 0
    hot_events: int = 0
    #: The reference part's feature columns (with ``reference_features``), else None:
    #: every row, or a uniform sample of :data:`REFERENCE_ROWS` (``reference_sampled``).
    reference: pd.DataFrame | None = None
    reference_sampled: bool = False

    @property
    def accepted(self) -> int:
        return self.received - sum(self.rejected.values())


def replay_to_files(config: Config, source: Any, outputs: dict[str | None, Path], *,
                    order: Order = "arrival",
                    labels: pd.DataFrame | SpilledLabels | None = None,
                    online: pd.DataFrame | SpilledLabels | None = None,
                    since_ms: int | None = None,
                    until_ms: int | None = None, attributes: bool = True,
                    split: TimeSplit | None = None, rejects: Path | None = None,
                    reference_features: bool = False, events_estimate: int | None = None,
                    memory_budget_bytes: int | None = None, progress: bool = False,
                    buckets: int | None = None, bucket_events: int | None = None
                    ) -> FilesResult:
    """Replay ``source`` into ``outputs`` (part name → file; ``{None: path}`` without a
    split). Memory: see :mod:`streams.replay.pipeline`; ``events_estimate`` (how many
    records the source holds) sizes the buckets for ``memory_budget_bytes``."""
    kept = output_columns(config, attributes)
    rejects_writer = None if rejects is None else RowsWriter(rejects)
    outcome, parts = replay_parts(
        config, source, order=order, attributes=kept, events_estimate=events_estimate,
        memory_budget_bytes=memory_budget_bytes, keep_rejects=rejects is not None,
        progress=progress, buckets=buckets, bucket_events=bucket_events,
        rejects_sink=None if rejects_writer is None
        else lambda held: rejects_writer.write(rejects_frame(held)))
    finish = RowFinisher(labels, online, since_ms, until_ms)
    categories = ["group", *(n for n in kept if config.event.attributes[n].type in
                             ("str", "bool"))]
    writers = {name: RowsWriter(path, categories) for name, path in outputs.items()}
    result = FilesResult()
    reference = ReferenceRows(REFERENCE_ROWS)
    first_part = None if split is None else split.names[0]
    for frame in parts:
        rows = finish(frame).drop(columns="_seq")
        if online is not None:
            result.online_scored += int(rows["online_score"].notna().sum())
        if split is None:
            pieces: dict[str | None, pd.DataFrame] = {None: rows}
        else:
            cut = split_by_time(rows, split)
            pieces = dict(cut.parts)
            result.in_gap += cut.in_gap
            for name, n in cut.label_too_late.items():
                result.label_too_late[name] = result.label_too_late.get(name, 0) + n
        for name, piece in pieces.items():
            if len(piece):
                writers[name].write(piece)
        if reference_features:
            reference.add(pieces[first_part][config.features.names])
    empty = finish.empty(config, kept).drop(columns="_seq")
    for name, writer in writers.items():
        writer.close(lambda: empty)
        result.part_rows[name] = max(writer.rows, 0)
    result.rows = sum(result.part_rows.values()) if split is None else \
        sum(result.part_rows.values()) + result.in_gap + sum(result.label_too_late.values())
    tally = outcome.acceptance.tally
    result.received, result.rejected, result.examples = (tally.received, tally.rejected,
                                                         tally.examples)
    result.outside = finish.outside
    result.buckets, result.spilled_bytes = outcome.buckets, outcome.spilled_bytes
    result.peak_rss_bytes = outcome.peak_rss_bytes
    result.first_pass_peak_bytes = outcome.first_pass_peak_bytes
    result.bucket_peaks = outcome.bucket_peaks
    result.hot_entities, result.hot_events = outcome.cuts.hot_entities, outcome.cuts.hot_events
    if reference_features:
        result.reference = reference.frame(empty[config.features.names])
        result.reference_sampled = reference.seen > reference.cap
    if rejects_writer is not None:
        rejects_writer.close(lambda: rejects_frame([]))
    return result


def rejects_frame(rejected: list[Rejected]) -> pd.DataFrame:
    """Rejected records as rows: where each was, the reason and the validator's detail."""
    return pd.DataFrame({"where": [r.where for r in rejected],
                         "reason": [r.reason for r in rejected],
                         "detail": [r.detail for r in rejected]}, dtype="str")


#: Rows of the first part a drift reference is built from, at most (a uniform sample
#: beyond): its quantiles are then within 0.0023 of the whole part's in CDF terms with
#: 99% confidence (Dvoretzky-Kiefer-Wolfowitz: sqrt(ln(2/0.01) / (2 * 500,000))).
REFERENCE_ROWS = 500_000


class ReferenceRows:
    """The rows a drift reference is built from, in bounded memory: all of them up to
    ``cap``, beyond that a uniform sample of ``cap`` rows without replacement (bottom-k:
    the rows with the ``cap`` smallest of a seeded random key, so runs repeat).

    >>> rows = ReferenceRows(3)
    >>> rows.add(pd.DataFrame({"x": [1.0, 2.0]})); rows.add(pd.DataFrame({"x": [3.0]}))
    >>> rows.frame(pd.DataFrame({"x": []}))["x"].tolist()
    [1.0, 2.0, 3.0]
    >>> rows.add(pd.DataFrame({"x": [4.0, 5.0]})); len(rows.frame(None)), rows.seen
    (3, 5)
    """

    def __init__(self, cap: int, seed: int = 17) -> None:
        self.cap, self.seen = cap, 0
        self._rng = np.random.default_rng(seed)
        self._kept: pd.DataFrame | None = None

    def add(self, frame: pd.DataFrame) -> None:
        frame = frame.assign(_key=self._rng.random(len(frame)))
        self.seen += len(frame)
        kept = frame if self._kept is None else pd.concat([self._kept, frame],
                                                          ignore_index=True)
        if len(kept) > self.cap:
            kept = kept.iloc[np.sort(np.argpartition(kept["_key"].to_numpy(),
                                                     self.cap - 1)[:self.cap])]
        self._kept = kept.reset_index(drop=True)

    def frame(self, empty: pd.DataFrame | None) -> pd.DataFrame:
        if self._kept is None:
            return empty if empty is not None else pd.DataFrame()
        return self._kept.drop(columns="_key")
