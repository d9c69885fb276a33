"""Replay event history into point-in-time feature frames and training sets.

The same validator and the same feature definitions as the online worker: raw records are
validated exactly as the worker validates them (rejected ones are counted by reason and
left out), late events are judged by the same per-partition watermark, and features come
from :func:`features.compute_features`, the vectorised twin of the online engine.

Python API::

    from streams.config import load_config
    from streams.replay import read_events_file, read_labels_file, replay

    config = load_config("examples/quickstart.yaml")
    result = replay(config, read_events_file("history/events.jsonl"),
                    labels=read_labels_file("history/labels.jsonl"), order="arrival")
    result.frame      # pandas DataFrame: event_id, entity_id, ts, group, features…, label
    result.rejected   # {"malformed_json": 3, ...}

Sources: files (JSONL, CSV, Parquet) or the configured Kafka topics, bounded in time with
``offsets_for_times``. ``order="arrival"`` reproduces what the worker computed (offset
order within each partition); ``order="event-time"`` gives the ideal answer.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from kafka import KafkaConsumer, TopicPartition
from tqdm import tqdm

from features import compute_features, late_mask, to_epoch_ms, training_set
from streams.config import Config
from streams.kafka_clients import kafka_python_options
from streams.validation import EventValidator, ValidEvent

Order = Literal["arrival", "event-time"]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One input record as it was received: bytes and where it came from."""

    value: bytes
    partition: int
    offset: int
    timestamp_ms: int | None  # broker timestamp (Kafka) or None (files)


@dataclass
class ReplayResult:
    frame: pd.DataFrame
    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return self.received - sum(self.rejected.values())


# -- sources ------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def read_events_file(path: str | Path, required: list[str] | None = None) -> list[RawRecord]:
    """Events from a JSONL, CSV or Parquet file, one record per line/row, in file order.

    Rows of CSV and Parquet become JSON objects (empty cells are absent fields), so they go
    through the same validator as Kafka records. A tabular file lacking any of the
    ``required`` columns is refused as a whole, naming them.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"events file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as f:
            lines = [line.rstrip(b"\r\n") for line in f]
        return [RawRecord(line, 0, i, None) for i, line in enumerate(lines) if line.strip()]
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype_backend="numpy_nullable")
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise ValueError(f"unknown events file type {suffix!r}: use .jsonl, .csv or .parquet")
    if required is not None:
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"events file {path} has no column(s) {missing}; "
                             f"it has {list(frame.columns)}")
    records = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        obj = {k: _plain(v) for k, v in row.items() if not _missing(v)}
        records.append(RawRecord(json.dumps(obj, default=_json_default).encode(), 0, i, None))
    return records


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def read_labels_file(path: str | Path) -> pd.DataFrame:
    """Labels (``event_id, entity_id, label, ts``) from a JSONL, CSV or Parquet file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"labels file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        frame = pd.read_json(path, lines=True, dtype={"event_id": str, "entity_id": str})
    elif suffix == ".csv":
        frame = pd.read_csv(path, dtype={"event_id": str, "entity_id": str})
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise ValueError(f"unknown labels file type {suffix!r}: use .jsonl, .csv or .parquet")
    for col in ("event_id", "label"):
        if col not in frame.columns:
            raise ValueError(f"labels file {path} has no column {col!r}")
    frame["event_id"] = frame["event_id"].astype(str)
    return frame


def read_topic(
    config: Config,
    topic: str,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    progress: bool = False,
    timeout_seconds: float = 120.0,
) -> list[RawRecord]:
    """Every record of ``topic`` whose broker timestamp is in ``[since_ms, until_ms)``,
    partition by partition in offset order."""
    consumer = KafkaConsumer(**kafka_python_options(config), enable_auto_commit=False,
                             max_poll_records=5000)
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            raise ValueError(f"topic {topic!r} does not exist on {config.broker}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        starts = consumer.beginning_offsets(tps)
        if since_ms is not None:
            found = consumer.offsets_for_times({tp: since_ms for tp in tps})
            starts = {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}
        if until_ms is not None:
            found = consumer.offsets_for_times({tp: until_ms for tp in tps})
            ends = {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        total = sum(max(0, ends[tp] - starts[tp]) for tp in tps)
        out: dict[int, list[RawRecord]] = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + timeout_seconds
        with tqdm(total=total, disable=not progress, unit="rec", desc=topic) as bar:
            while remaining and time.monotonic() < deadline:
                for tp, msgs in consumer.poll(timeout_ms=500).items():
                    for msg in msgs:
                        if msg.offset >= ends[tp]:
                            remaining.discard(tp)
                            break
                        out[tp.partition].append(
                            RawRecord(msg.value or b"", msg.partition, msg.offset, msg.timestamp))
                        bar.update(1)
                    if tp in remaining and consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        if remaining:
            raise TimeoutError(f"reading {topic!r} did not finish in {timeout_seconds:.0f}s")
        return [rec for p in sorted(out) for rec in out[p]]
    finally:
        consumer.close()


def labels_from_records(records: Iterable[RawRecord]) -> pd.DataFrame:
    """Labels from raw ``labels`` records; malformed ones are skipped (the worker DLQs them)."""
    from pydantic import ValidationError

    from streams.records import Label

    rows = []
    for rec in records:
        try:
            label = Label.model_validate_json(rec.value)
        except ValidationError:
            continue
        rows.append({"event_id": label.event_id, "entity_id": label.entity_id,
                     "label": label.value, "label_ts": label.ts})
    return pd.DataFrame(rows, columns=["event_id", "entity_id", "label", "label_ts"])


# -- validation and features --------------------------------------------------------------


def validated_frame(config: Config, records: Iterable[RawRecord],
                    progress: bool = False) -> ReplayResult:
    """Validate raw records like the worker; accepted ones become a frame in arrival order."""
    validator = EventValidator(config.event)
    wall_ms = time.time_ns() // 1_000_000
    rejected: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    received = 0
    for rec in tqdm(records, disable=not progress, unit="rec", desc="validate"):
        received += 1
        checked = validator.validate(rec.value, rec.timestamp_ms or wall_ms)
        if not isinstance(checked, ValidEvent):
            rejected[checked.reason] += 1
            continue
        rows.append({"event_id": checked.event_id, "entity_id": checked.entity_id,
                     "ts": checked.ts_ms, "group": checked.group, **checked.attrs,
                     "_partition": rec.partition, "_offset": rec.offset})
    columns = ["event_id", "entity_id", "ts", "group", *config.event.attributes,
               "_partition", "_offset"]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))
    if config.event.group_field != "group" and config.event.group_field in frame.columns:
        frame = frame.drop(columns=[config.event.group_field])
    frame["ts"] = frame["ts"].astype("int64")
    return ReplayResult(frame=frame, received=received, rejected=rejected)


def required_columns(config: Config) -> list[str]:
    """The columns every event must have: id, entity, time and required attributes."""
    s = config.event
    return [s.id_field, s.entity_field, s.time_field,
            *(n for n, a in s.attributes.items() if a.required)]


def select_features(config: Config, names: list[str]) -> Config:
    """The config with only the named features (in the given order); unknown names fail."""
    known = {f.name: f for f in config.features.features}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; the config defines {list(known)}")
    subset = config.features.model_copy(update={"features": [known[n] for n in names]})
    return config.model_copy(update={"features": subset})


def replay(
    config: Config,
    records: Iterable[RawRecord],
    *,
    labels: pd.DataFrame | None = None,
    order: Order = "arrival",
    progress: bool = False,
) -> ReplayResult:
    """Features as of each accepted event (one row per labelled event when ``labels``)."""
    result = validated_frame(config, records, progress)
    events = result.frame
    lateness = None
    if order == "arrival":  # the worker's rule: late against the partition's watermark
        lateness = config.event.allowed_lateness_ms
        late = late_mask(events["ts"].to_numpy(), events["_partition"].to_numpy(), lateness)
        if late.any():
            result.rejected["late"] += int(late.sum())
    options: dict[str, Any] = {"order": order, "allowed_lateness_ms": lateness,
                               "partition_col": "_partition"}
    if labels is None:
        features = compute_features(events, config.features, **options)
        keys = events.loc[features.index, ["event_id", "entity_id", "ts", "group"]]
        frame = keys.join(features).reset_index(drop=True)
    else:
        frame = training_set(events, labels[["event_id", "label"]], config.features, **options)
    result.frame = frame.drop(columns=[c for c in ("_partition", "_offset") if c in frame])
    return result


def write_frame(frame: pd.DataFrame, path: str | Path) -> None:
    """Write Parquet or CSV, chosen by the file extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise ValueError(f"unknown output type {suffix!r}: use .parquet or .csv")


def parse_time_ms(value: str) -> int:
    """``--since``/``--until``: epoch milliseconds or an ISO-8601 time with an offset."""
    if value.lstrip("-").isdigit():
        return int(value)
    series = pd.Series([value])
    try:
        return int(to_epoch_ms(series, "time").iloc[0])
    except ValueError as exc:
        raise ValueError(f"not a time: {value!r} (epoch ms or ISO-8601)") from exc
