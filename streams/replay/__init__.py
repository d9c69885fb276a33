"""Replay: event history (files or Kafka) into point-in-time feature frames and training sets.

The public API: sources in :mod:`streams.replay.sources` (files read in Arrow batches by
:mod:`streams.replay.batches`, topics by :mod:`streams.replay.topic`), the column-wise
validation in :mod:`streams.replay.checks`, the first pass (validation, lateness) in
:mod:`streams.replay.accepted`, one entity partition replayed in
:mod:`streams.replay.partition`, bounded memory in :mod:`streams.replay.pipeline` and
:mod:`streams.replay.to_files`, the in-memory replay in :mod:`streams.replay.history`,
time splits in :mod:`streams.replay.splits`; ``streambed replay`` in
:mod:`streams.replay.cli`. A guide: ``docs/data-science.md``.
"""

from streams.replay.history import (
    Rejected,
    ReplayResult,
    check_output_path,
    read_events_topic,
    read_online,
    read_start_ms,
    replay,
    select_features,
    validated_frame,
    write_frame,
)
from streams.replay.sources import (
    KeyPartitioner,
    RawRecord,
    labels_from_records,
    online_from_records,
    read_events_file,
    read_labels_file,
    read_topic,
    required_columns,
)
from streams.replay.splits import Part, Splits, TimeSplit, parse_split, split_by_time
from streams.replay.times import format_ms, parse_time_ms

__all__ = [
    "KeyPartitioner",
    "Part",
    "RawRecord",
    "Rejected",
    "ReplayResult",
    "Splits",
    "TimeSplit",
    "check_output_path",
    "format_ms",
    "labels_from_records",
    "online_from_records",
    "parse_split",
    "parse_time_ms",
    "read_events_file",
    "read_events_topic",
    "read_labels_file",
    "read_online",
    "read_start_ms",
    "read_topic",
    "replay",
    "required_columns",
    "select_features",
    "split_by_time",
    "validated_frame",
    "write_frame",
]
