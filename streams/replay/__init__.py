"""Replay: event history (files or Kafka) into point-in-time feature frames and training sets.

The public API lives in :mod:`streams.replay.history`; ``streambed replay`` in
:mod:`streams.replay.cli`.
"""

from streams.replay.history import (
    RawRecord,
    ReplayResult,
    labels_from_records,
    parse_time_ms,
    read_events_file,
    read_labels_file,
    read_topic,
    replay,
    required_columns,
    select_features,
    validated_frame,
    write_frame,
)

__all__ = [
    "RawRecord",
    "ReplayResult",
    "labels_from_records",
    "parse_time_ms",
    "read_events_file",
    "read_labels_file",
    "read_topic",
    "replay",
    "required_columns",
    "select_features",
    "validated_frame",
    "write_frame",
]
