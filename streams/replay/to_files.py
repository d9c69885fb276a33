"""``streambed replay``'s output path: history → training-set files, in bounded memory.

:func:`replay_to_files` runs :func:`~streams.replay.pipeline.replay_parts` and writes its
rows as they come (:class:`~streams.replay.pipeline.RowsWriter`): one file, or one per
part of a ``--split``; with ``rejects`` a file of every rejected record (where, reason,
detail). Labels and online outcomes are held in memory (they are per labelled or scored
event, not per event of the history).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from streams.config import Config
from streams.replay.accepted import Rejected
from streams.replay.history import RowFinisher, output_columns
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
    #: The reference part's feature columns (with ``reference_features``), else None.
    reference: pd.DataFrame | None = None

    @property
    def accepted(self) -> int:
        return self.received - sum(self.rejected.values())


def replay_to_files(config: Config, source: Any, outputs: dict[str | None, Path], *,
                    order: Order = "arrival", labels: pd.DataFrame | None = None,
                    online: pd.DataFrame | None = None, since_ms: int | None = None,
                    until_ms: int | None = None, attributes: bool = True,
                    split: TimeSplit | None = None, rejects: Path | None = None,
                    reference_features: bool = False, events_estimate: int | None = None,
                    memory_budget_bytes: int | None = None, progress: bool = False,
                    buckets: int | None = None) -> FilesResult:
    """Replay ``source`` into ``outputs`` (part name → file; ``{None: path}`` without a
    split). Memory: see :mod:`streams.replay.pipeline`; ``events_estimate`` (how many
    records the source holds) sizes the buckets for ``memory_budget_bytes``."""
    kept = output_columns(config, attributes)
    outcome, parts = replay_parts(config, source, order=order, attributes=kept,
                                  events_estimate=events_estimate,
                                  memory_budget_bytes=memory_budget_bytes,
                                  keep_rejects=rejects is not None, progress=progress,
                                  buckets=buckets)
    finish = RowFinisher(labels, online, since_ms, until_ms)
    categories = ["group", *(n for n in kept if config.event.attributes[n].type in
                             ("str", "bool"))]
    writers = {name: RowsWriter(path, categories) for name, path in outputs.items()}
    result = FilesResult()
    references: list[pd.DataFrame] = []
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
            references.append(pieces[first_part][config.features.names])
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
    if reference_features:
        result.reference = (pd.concat(references, ignore_index=True) if references
                            else empty[config.features.names])
    if rejects is not None:
        write_rejects(tally.rejects or [], rejects)
    return result


def write_rejects(rejected: list[Rejected], path: Path) -> None:
    """Every rejected record: where it was, the reason and the validator's detail."""
    frame = pd.DataFrame({"where": [r.where for r in rejected],
                          "reason": [r.reason for r in rejected],
                          "detail": [r.detail for r in rejected]})
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
