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

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from tqdm import tqdm

from features import compute_features, late_mask
from streams.config import Config, EventSchema
from streams.replay.sources import (
    ONLINE_COLUMNS,
    KeyPartitioner,
    RawRecord,
    online_from_records,
    read_topic,
)
from streams.replay.splits import Splits, TimeSplit, split_by_time
from streams.replay.times import format_ms
from streams.validation import EventValidator, ValidEvent

Order = Literal["arrival", "event-time"]
#: Output files replay can write, by extension.
OUTPUT_TYPES = (".parquet", ".pq", ".csv")
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


def validated_frame(config: Config, records: Iterable[RawRecord],
                    progress: bool = False) -> ReplayResult:
    """Validate raw records like the worker; accepted ones become a frame in arrival order.

    The frame has ``event_id, entity_id, ts, group``, every attribute, and ``_partition``:
    the record's partition, or for a file record the one Kafka's default partitioner gives
    its entity key with ``config.topics.partitions``.
    """
    validator = EventValidator(config.event)
    partition_of = KeyPartitioner(config.topics.partitions)
    wall_ms = time.time_ns() // 1_000_000
    rejected: Counter[str] = Counter()
    examples: list[Rejected] = []
    rows: list[dict[str, Any]] = []
    received = 0
    for rec in tqdm(records, disable=not progress, unit="rec", desc="validate"):
        received += 1
        checked = validator.validate(rec.value, rec.timestamp_ms or wall_ms)
        if not isinstance(checked, ValidEvent):
            rejected[checked.reason] += 1
            if rejected[checked.reason] <= EXAMPLES_PER_REASON:
                examples.append(Rejected(checked.reason, checked.detail, rec.where))
            continue
        partition = rec.partition
        if partition is None:
            partition = partition_of(checked.entity_id)
        rows.append({"event_id": checked.event_id, "entity_id": checked.entity_id,
                     "ts": checked.ts_ms, "group": checked.group, **checked.attrs,
                     "_partition": partition, "_where": rec.where})
    columns = ["event_id", "entity_id", "ts", "group", *config.event.attributes,
               "_partition", "_where"]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))
    if config.event.group_field != "group" and config.event.group_field in frame.columns:
        frame = frame.drop(columns=[config.event.group_field])
    frame["ts"] = frame["ts"].astype("int64")
    frame["_partition"] = frame["_partition"].astype("int64")
    return ReplayResult(frame=frame, received=received, rejected=rejected,
                        examples=examples)


def _late_examples(events: pd.DataFrame, late: Any, config: Config) -> list[Rejected]:
    lateness = config.event.allowed_lateness_ms
    out = []
    for i in late.nonzero()[0][:EXAMPLES_PER_REASON]:
        row = events.iloc[i]
        # The watermark before this event: the running maximum of the rows before it.
        earlier = events.iloc[:i]
        mark = int(earlier.loc[earlier["_partition"] == row["_partition"], "ts"].max())
        out.append(Rejected("late", (
            f"{config.event.time_field}={row['ts']} ({format_ms(int(row['ts']))}) is "
            f"{(mark - row['ts']) / 1000:g}s behind the watermark of partition "
            f"{row['_partition']} ({format_ms(mark)}); allowed lateness is "
            f"{lateness / 1000:g}s"), row["_where"]))
    return out


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


#: The pandas dtype of an attribute column, by declared type (nullable where needed).
_DTYPES = {"float": "float64", "int": "Int64", "bool": "boolean", "str": "str"}


def _as_datetime(ms: pd.Series) -> pd.Series:
    return pd.to_datetime(ms, unit="ms", utc=True).dt.as_unit("ms")


def replay(
    config: Config,
    records: Iterable[RawRecord],
    *,
    labels: pd.DataFrame | None = None,
    order: Order = "arrival",
    since_ms: int | None = None,
    until_ms: int | None = None,
    online: pd.DataFrame | None = None,
    attributes: bool = True,
    split: TimeSplit | None = None,
    progress: bool = False,
) -> ReplayResult:
    """Features as of each accepted event; with ``labels``, one row per labelled event.

    Columns: ``event_id, entity_id, ts`` (epoch ms), ``event_time`` (the same instant, a
    UTC datetime), ``group``, the configured attributes (sensitive ones included; not with
    ``attributes=False``), every feature; with labels ``label, label_ts, label_time`` (the
    first label of an event wins; ``label_ts`` when the labels have times); with
    ``online`` (see :func:`online_from_records`) ``online_score, online_decision,
    online_model_version`` (NA for an event the worker did not score).

    Every accepted event feeds the features; rows are kept for events with
    ``since_ms <= ts < until_ms`` (``result.outside`` counts the others). With ``split``,
    ``result.parts`` holds the rows of each part (:func:`split_by_time`).
    """
    kept_attributes = output_columns(config, attributes)
    result = validated_frame(config, records, progress)
    events = result.frame
    lateness = None
    if order == "arrival":  # the worker's rule: late against the partition's watermark
        lateness = config.event.allowed_lateness_ms
        late = late_mask(events["ts"].to_numpy(), events["_partition"].to_numpy(), lateness)
        if late.any():
            result.rejected["late"] += int(late.sum())
            result.examples.extend(_late_examples(events, late, config))
    features = compute_features(events, config.features, order=order,
                                allowed_lateness_ms=lateness, partition_col="_partition")
    frame = events.loc[features.index, ["event_id", "entity_id", "ts", "group",
                                        *kept_attributes]]
    frame.insert(3, "event_time", _as_datetime(frame["ts"]))
    for name in kept_attributes:  # declared types, nullable: null stays null, never 0
        frame[name] = frame[name].astype(_DTYPES[config.event.attributes[name].type])
    frame = frame.join(features).reset_index(drop=True)

    inside = pd.Series(True, index=frame.index)
    if since_ms is not None:
        inside &= frame["ts"] >= since_ms
    if until_ms is not None:
        inside &= frame["ts"] < until_ms
    result.outside = int((~inside).sum())
    frame = frame[inside]
    if labels is not None:
        frame = _join_labels(frame, labels)
    if online is not None:
        first = online.drop_duplicates("event_id", keep="first").set_index("event_id")
        for column in ONLINE_COLUMNS.values():
            frame[column] = frame["event_id"].map(first[column])
        frame["online_decision"] = frame["online_decision"].astype("Int64")
    result.frame = frame.reset_index(drop=True)
    if split is not None:
        result.splits = split_by_time(result.frame, split)
    return result


def _join_labels(frame: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows with their label (and its time): the first label of an event wins,
    as in :func:`features.training_set`."""
    first = labels.drop_duplicates("event_id", keep="first").set_index("event_id")
    frame = frame[frame["event_id"].isin(first.index)].copy()
    frame["label"] = frame["event_id"].map(first["label"]).astype("int64")
    if "label_ts" in first.columns:
        frame["label_ts"] = frame["event_id"].map(first["label_ts"]).astype("int64")
        frame["label_time"] = _as_datetime(frame["label_ts"])
    return frame


# -- Kafka ------------------------------------------------------------------------------


class EventTimeStop:
    """Ends a partition's read once its watermark passes ``until_ms`` + allowed lateness.

    From there on, any record of the partition with an event time before ``until_ms`` is
    late (``ts < until <= watermark - lateness``): the worker rejected it, and arrival-order
    replay would too. Records the validator rejects do not move the watermark.
    """

    def __init__(self, schema: EventSchema, until_ms: int) -> None:
        self.validator = EventValidator(schema)
        self.end_ms = until_ms + schema.allowed_lateness_ms
        self.watermarks: dict[int, int] = {}

    def __call__(self, rec: RawRecord) -> bool:
        checked = self.validator.validate(rec.value, rec.timestamp_ms or 0)
        if not isinstance(checked, ValidEvent):
            return False
        mark = max(self.watermarks.get(rec.partition or 0, checked.ts_ms), checked.ts_ms)
        self.watermarks[rec.partition or 0] = mark
        return mark >= self.end_ms


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
                      progress: bool = False) -> list[RawRecord]:
    """The ``events`` records that can hold events with ``since_ms <= ts < until_ms``:
    from the offsets found by broker timestamp (:func:`read_start_ms`) until each
    partition's watermark passes ``until_ms`` (:class:`EventTimeStop`). Filter the rows on
    event time with ``replay(since_ms=, until_ms=)``."""
    stop = None if until_ms is None else EventTimeStop(config.event, until_ms)
    return read_topic(config, config.topics.events,
                      from_broker_ms=read_start_ms(config, since_ms, warmup_ms),
                      stop=stop, progress=progress)


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
