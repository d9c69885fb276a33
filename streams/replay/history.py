"""Replay event history into point-in-time feature frames and training sets.

The same validator and the same feature definitions as the online worker: raw records are
validated exactly as the worker validates them (rejected ones are counted by reason, with a
few examples, and left out), late events are judged by the same per-partition watermark,
and features come from :func:`features.compute_features`, the vectorised twin of the
online engine.

Python API::

    from streams.config import load_config
    from streams.replay import read_events_file, read_labels_file, replay

    config = load_config("examples/quickstart.yaml")
    result = replay(config, read_events_file("history/events.jsonl", config),
                    labels=read_labels_file("history/labels.jsonl"), order="arrival")
    result.frame      # event_id, entity_id, ts, event_time, group, attributes, features, label…
    result.rejected   # {"malformed_json": 3, "late": 2, ...}
    result.examples   # a few rejections with their detail and source position

Order: ``"arrival"`` reproduces what the worker computed (offset order within each
partition; a file's records get the partition Kafka's default partitioner gives their
entity key, or their ``partition`` column); ``"event-time"`` gives the ideal answer.
Time bounds (``since_ms``/``until_ms``) are on event time: every event read feeds the
features, only the rows inside the bounds are returned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streams.config import Config
from streams.replay.accepted import Acceptance, Rejected
from streams.replay.labels import SpilledLabels
from streams.replay.partition import OUTPUT_DTYPES, Order, as_datetime
from streams.replay.pipeline import replay_parts
from streams.replay.sources import (
    ONLINE_COLUMNS,
    RawRecord,
    online_from_records,
    read_topic,
)
from streams.replay.splits import Splits, TimeSplit, split_by_time
from streams.replay.topic import TopicHistory

#: Output files replay can write, by extension.
OUTPUT_TYPES = (".parquet", ".pq", ".csv")

@dataclass
class ReplayResult:
    frame: pd.DataFrame
    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    #: The first few rejections of each reason, with their detail.
    examples: list[Rejected] = field(default_factory=list)
    #: Accepted events outside ``[since_ms, until_ms)``: history for the features only.
    outside: int = 0
    #: With a split: the frame's rows by part (``frame`` is every row).
    splits: Splits | None = None

    @property
    def accepted(self) -> int:
        return self.received - sum(self.rejected.values())

    @property
    def parts(self) -> dict[str, pd.DataFrame]:
        """The parts of the split (``{}`` without one)."""
        return {} if self.splits is None else self.splits.parts


# -- validation -------------------------------------------------------------------------


def validated_frame(config: Config, records: Iterable[RawRecord] | Any,
                    progress: bool = False) -> ReplayResult:
    """Validate a history like the worker; accepted events become a frame in arrival order.

    ``records``: an :class:`~streams.replay.batches.EventFile`, a topic read, or raw
    records. The frame has ``event_id, entity_id, ts, group``, every attribute,
    ``_partition`` (the record's partition, or for a file record the one Kafka's default
    partitioner gives its entity key with ``config.topics.partitions``), ``_seq`` (arrival
    position) and ``_pos`` (line, row or offset). Late events are kept (the lateness rule
    is the replay's: :func:`replay`).
    """
    acceptance = Acceptance(config, drop_late=False, progress=progress)
    frames = list(acceptance.frames(records))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    tally = acceptance.tally
    return ReplayResult(frame=frame, received=tally.received, rejected=tally.rejected,
                        examples=tally.examples)


# -- the training set -------------------------------------------------------------------

#: Columns replay itself writes; attributes and features may not take these names.
CORE_COLUMNS = ("event_id", "entity_id", "ts", "event_time", "group", "label", "label_ts",
                "label_time", *ONLINE_COLUMNS.values())


def output_columns(config: Config, attributes: bool = True) -> list[str]:
    """Refuse names that would collide in the frame; return the attribute columns kept."""
    kept = [n for n in config.event.attributes if n != config.event.group_field]
    kept = kept if attributes else []
    clash = sorted(set(config.features.names) & set(kept))
    if clash:
        raise ValueError(f"feature(s) {clash} have the names of event attributes, which a "
                         f"training set keeps: rename the features, or leave the "
                         f"attributes out (attributes=False)")
    reserved = sorted((set(config.features.names) | set(kept)) & set(CORE_COLUMNS))
    if reserved:
        raise ValueError(f"{reserved}: names replay uses for its own columns "
                         f"{list(CORE_COLUMNS)}; rename them in the config")
    return kept


def replay(
    config: Config,
    records: Iterable[RawRecord] | Any,
    *,
    labels: pd.DataFrame | None = None,
    order: Order = "arrival",
    since_ms: int | None = None,
    until_ms: int | None = None,
    online: pd.DataFrame | None = None,
    attributes: bool = True,
    split: TimeSplit | None = None,
    progress: bool = False,
    buckets: int = 1,
    bucket_events: int | None = None,
) -> ReplayResult:
    """Features as of each accepted event; with ``labels``, one row per labelled event.

    ``records``: an events file (:func:`~streams.replay.sources.read_events_file`), a
    topic read (:func:`read_events_topic`) or raw records. Columns: ``event_id,
    entity_id, ts`` (epoch ms), ``event_time`` (the same instant, a UTC datetime),
    ``group``, the configured attributes (sensitive ones included; not with
    ``attributes=False``), every feature; with labels ``label, label_ts, label_time`` (the
    first label of an event wins; ``label_ts`` when the labels have times); with
    ``online`` (see :func:`online_from_records`) ``online_score, online_decision,
    online_model_version`` (NA for an event the worker did not score).

    Every accepted event feeds the features; rows are kept for events with
    ``since_ms <= ts < until_ms`` (``result.outside`` counts the others). With ``split``,
    ``result.parts`` holds the rows of each part (:func:`split_by_time`). The whole
    result is in memory, in arrival order; ``buckets`` > 1 replays the history cut by
    entity, as the bounded-memory replay does (:mod:`streams.replay.pipeline`), and gives
    the same rows, and ``bucket_events`` caps the events of a bucket (a larger one is cut
    again, and an entity with more than half of that is replayed in chunks, its state
    carried: :mod:`streams.replay.chunked`). For histories larger than memory, see
    :func:`replay_to_files`.
    """
    kept_attributes = output_columns(config, attributes)
    outcome, parts = replay_parts(config, records, order=order, attributes=kept_attributes,
                                  progress=progress, buckets=buckets,
                                  bucket_events=bucket_events)
    finish = RowFinisher(labels, online, since_ms, until_ms)
    frames = [finish(part) for part in parts]
    tally = outcome.acceptance.tally
    frame = (pd.concat(frames, ignore_index=True) if frames
             else finish.empty(config, kept_attributes))
    frame = frame.sort_values("_seq", kind="stable").drop(columns="_seq")
    result = ReplayResult(frame=frame.reset_index(drop=True), received=tally.received,
                          rejected=tally.rejected, examples=tally.examples,
                          outside=finish.outside)
    if split is not None:
        result.splits = split_by_time(result.frame, split)
    return result


class RowFinisher:
    """What is done to replayed rows, a part at a time: keep those inside
    ``[since_ms, until_ms)`` (counting the others), join labels (in memory, or
    :class:`~streams.replay.labels.SpilledLabels` on disk), add online outcomes."""

    def __init__(self, labels: pd.DataFrame | SpilledLabels | None,
                 online: pd.DataFrame | SpilledLabels | None,
                 since_ms: int | None, until_ms: int | None) -> None:
        self.spilled = labels if isinstance(labels, SpilledLabels) else None
        self.labels = None if labels is None or self.spilled is not None else \
            labels.drop_duplicates("event_id", keep="first").set_index("event_id")
        self.spilled_online = online if isinstance(online, SpilledLabels) else None
        self.online = None if online is None or self.spilled_online is not None else \
            online.drop_duplicates("event_id", keep="first").set_index("event_id")
        self.since_ms, self.until_ms = since_ms, until_ms
        self.outside = 0

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        inside = np.ones(len(frame), dtype=bool)
        if self.since_ms is not None:
            inside &= frame["ts"].to_numpy() >= self.since_ms
        if self.until_ms is not None:
            inside &= frame["ts"].to_numpy() < self.until_ms
        self.outside += int((~inside).sum())
        if not inside.all():
            frame = frame[inside]
        if self.labels is not None:
            frame = _join_labels(frame, self.labels)
        elif self.spilled is not None:
            frame = _join_labels(frame, self.spilled.first_for(frame["event_id"]))
        if self.online is not None or self.spilled_online is not None:
            first = self.online if self.spilled_online is None else \
                self.spilled_online.first_for(frame["event_id"])
            frame = frame.copy()
            for column in ONLINE_COLUMNS.values():
                frame[column] = frame["event_id"].map(first[column])
            frame["online_decision"] = frame["online_decision"].astype("Int64")
        return frame.reset_index(drop=True)

    def empty(self, config: Config, attributes: list[str]) -> pd.DataFrame:
        """The columns of a result with no rows."""
        columns = {"event_id": pd.Series(dtype=object), "entity_id": pd.Series(dtype=object),
                   "ts": pd.Series(dtype="int64"),
                   "event_time": pd.Series(dtype="datetime64[ms, UTC]"),
                   "group": pd.Series(dtype=object)}
        for name in attributes:
            columns[name] = pd.Series(dtype=OUTPUT_DTYPES[config.event.attributes[name].type])
        for plan in config.features.features:
            columns[plan.name] = pd.Series(dtype="float64")
        columns["_seq"] = pd.Series(dtype="int64")
        return self(pd.DataFrame(columns))


def _join_labels(frame: pd.DataFrame, first: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows with their label (and its time): ``first`` is the first label of
    each event (indexed by event id), as in :func:`features.training_set`."""
    frame = frame[frame["event_id"].isin(first.index)].copy()
    frame["label"] = frame["event_id"].map(first["label"]).astype("int64")
    if "label_ts" in first.columns:
        frame["label_ts"] = frame["event_id"].map(first["label_ts"]).astype("int64")
        frame["label_time"] = as_datetime(frame["label_ts"])
    return frame


# -- Kafka ------------------------------------------------------------------------------


def read_start_ms(config: Config, since_ms: int | None, warmup_ms: int = 0) -> int | None:
    """The broker time to start reading topics at for events from ``since_ms`` on.

    A record is produced no earlier than its event happened, give or take the allowed
    lateness (clock skew), so nothing at or after ``since_ms`` lies before this; ``warmup_ms``
    reaches further back, so windows have their history.
    """
    if since_ms is None:
        return None
    return since_ms - config.event.allowed_lateness_ms - warmup_ms


def read_events_topic(config: Config, *, since_ms: int | None = None,
                      until_ms: int | None = None, warmup_ms: int = 0,
                      progress: bool = False) -> TopicHistory:
    """The ``events`` records that can hold events with ``since_ms <= ts < until_ms``:
    from the offsets found by broker timestamp (:func:`read_start_ms`) until each
    partition's watermark passes ``until_ms`` (:class:`~streams.replay.topic.Stop`), read
    lazily in large fetches (:class:`~streams.replay.topic.TopicHistory`). Filter the
    rows on event time with ``replay(since_ms=, until_ms=)``."""
    return TopicHistory(config, config.topics.events,
                        from_broker_ms=read_start_ms(config, since_ms, warmup_ms),
                        until_ms=until_ms, progress=progress)


def read_online(config: Config, *, since_ms: int | None = None, warmup_ms: int = 0,
                progress: bool = False) -> tuple[pd.DataFrame, int]:
    """What each event got online, from the ``scored`` topic (see
    :func:`~streams.replay.sources.online_from_records`)."""
    records = read_topic(config, config.topics.scored,
                         from_broker_ms=read_start_ms(config, since_ms, warmup_ms),
                         progress=progress)
    return online_from_records(records)


# -- output -----------------------------------------------------------------------------


def select_features(config: Config, names: list[str]) -> Config:
    """The config with only the named features (in the given order); unknown names fail."""
    known = {f.name: f for f in config.features.features}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; the config defines {list(known)}")
    subset = config.features.model_copy(update={"features": [known[n] for n in names]})
    return config.model_copy(update={"features": subset})


def check_output_path(path: str | Path) -> Path:
    """Refuse an output type replay cannot write, before any work is done."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_TYPES:
        raise ValueError(f"unknown output type {path.suffix or '(none)'!r} for {path}: "
                         f"use .parquet or .csv")
    return path


def write_frame(frame: pd.DataFrame, path: str | Path) -> None:
    """Write Parquet or CSV, chosen by the file extension."""
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
