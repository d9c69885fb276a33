"""Where replay reads history: event files (JSONL, CSV, Parquet), labels, and Kafka topics.

Every event becomes a :class:`RawRecord`, bytes plus where it came from, so files and
topics go through the worker's validator alike. Tabular files are read as written: every
cell is text until the config's declared type says otherwise, and only an empty cell is
null (``"NA"`` is North America, ``5411`` declared ``str`` is a merchant code).

A file has no partitions of its own, so its records carry ``partition=None`` and replay
gives each the partition Kafka's default partitioner would (:class:`KeyPartitioner`),
unless the file has a ``partition`` column.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import DefaultPartitioner
from tqdm import tqdm

from features import to_epoch_ms
from streams.config import Config, EventSchema
from streams.kafka_clients import kafka_python_options

if TYPE_CHECKING:
    from streams.replay.batches import EventFile

#: A column of a CSV or Parquet file that says which partition the row arrived on.
PARTITION_COLUMN = "partition"
TABULAR = (".csv", ".parquet", ".pq")
JSON_LINES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One input record as it was received: bytes and where it came from.

    ``partition`` is None for a file without a partition column: replay derives it from
    the entity key. ``line`` is the line of a JSONL or CSV file (1-based).
    """

    value: bytes
    partition: int | None
    offset: int
    timestamp_ms: int | None  # broker timestamp (Kafka) or None (files)
    line: int | None = None

    @property
    def where(self) -> str:
        if self.line is not None:
            return f"line {self.line}"
        if self.timestamp_ms is None:
            return f"row {self.offset + 1}"
        return f"partition {self.partition} offset {self.offset}"


class KeyPartitioner:
    """The partition Kafka's default partitioner gives a key: murmur2 of its UTF-8 bytes,
    as kafka-python's ``DefaultPartitioner`` (and the Java client) compute it.

    >>> p = KeyPartitioner(4)
    >>> [p("u1"), p("u2"), p("u1")] == [p("u1"), p("u2"), p("u1")]
    True
    >>> KeyPartitioner(1)("anything")
    0
    """

    def __init__(self, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("a topic has at least one partition")
        self.all_partitions = list(range(partitions))
        self._partitioner = DefaultPartitioner()
        self._cache: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        found = self._cache.get(key)
        if found is None:
            found = self._partitioner(key.encode("utf-8"), self.all_partitions,
                                      self.all_partitions)
            self._cache[key] = found
        return found


# -- event files ------------------------------------------------------------------------


def _schema_of(source: Config | EventSchema | None) -> EventSchema | None:
    return source.event if isinstance(source, Config) else source


def read_events_file(path: str | Path,
                     schema: Config | EventSchema | None = None) -> EventFile:
    """Events from a JSONL, CSV or Parquet file, one record per line/row, in file order,
    read lazily in Arrow batches (:class:`~streams.replay.batches.EventFile`).

    JSONL lines are raw bytes, exactly like Kafka records. Cells of CSV and Parquet are
    read as the ``schema`` (a config or its event schema, required for them) declares
    their field: a cell is parsed as the type its field is declared with, text stays
    text, and only an empty cell is null (absent). A tabular file lacking a required
    column is refused as a whole, naming it; a ``partition`` column (when the schema has
    no such field) gives each row's partition instead of the entity key.
    """
    from streams.replay.batches import EventFile

    return EventFile(path, _schema_of(schema))


def required_columns(schema: Config | EventSchema) -> list[str]:
    """The columns every event must have: id, entity, time and required attributes."""
    s = _schema_of(schema)
    assert s is not None
    return [s.id_field, s.entity_field, s.time_field,
            *(n for n, a in s.attributes.items() if a.required)]


def _fields(s: EventSchema) -> set[str]:
    return {s.id_field, s.entity_field, s.time_field, s.group_field, *s.attributes}


def _kind(s: EventSchema, name: str) -> str:
    """How to read a column: its declared type, or what the time format calls for."""
    if name == s.time_field:
        return s.time_format
    if name in s.attributes:
        return s.attributes[name].type
    if name in (s.id_field, s.entity_field):
        return "id"
    return "str"  # the group field, and undeclared columns (the validator judges those)


def _partition_column(column: pd.Series, path: Path) -> list[int]:
    out = []
    for i, value in enumerate(column.tolist()):
        number = _typed(value, "int")
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise ValueError(f"events file {path}: row {i + 1}: partition {value!r} is not "
                             f"a partition number")
        out.append(number)
    return out


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and math.isnan(value))


def _number(text: str) -> int | float | str:
    """The number a cell writes (an int when it has no fraction), or the text itself."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _typed(value: Any, kind: str) -> Any:
    """One cell as the JSON value its declared type means; what does not fit is left as
    it is for the validator to reject with its usual reason and detail."""
    if _missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, pd.Timestamp):
        value = value.item()  # numpy scalars
    if isinstance(value, str):
        if kind in ("float", "int", "epoch_ms", "epoch_seconds"):
            return _number(value.strip())
        if kind == "bool":
            return {"true": True, "false": False}.get(value.strip().lower(), value)
        return value
    if isinstance(value, pd.Timestamp):
        return _time_value(value, kind)
    if kind == "str" and isinstance(value, int | float) and not isinstance(value, bool):
        # A code stored as a number (a Parquet int column for a str field): its text.
        return str(int(value)) if float(value).is_integer() else str(value)
    return value


def _time_value(value: pd.Timestamp, kind: str) -> Any:
    if value.tzinfo is None:
        return value.isoformat()  # no offset: the validator says so
    ms = int((value - pd.Timestamp(0, tz=UTC)) // pd.Timedelta(milliseconds=1))
    if kind == "epoch_ms":
        return ms
    if kind == "epoch_seconds":
        return ms / 1000
    return value.isoformat()


# -- labels -----------------------------------------------------------------------------


def read_labels_file(path: str | Path) -> pd.DataFrame:
    """Labels from a JSONL, CSV or Parquet file: ``event_id, label`` and, when the file
    has a ``ts`` column (when the label became known), ``label_ts`` in epoch ms.

    Ids are read as text, as written; a label must be 0 or 1 (or true/false).
    """
    path = _labels_path(path)
    suffix = path.suffix.lower()
    if suffix in JSON_LINES:
        frame = pd.read_json(path, lines=True, dtype={"event_id": str, "entity_id": str})
    elif suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    else:
        frame = pd.read_parquet(path)
    return _normalised_labels(frame, path)


def iter_labels_file(path: str | Path, rows: int = 500_000) -> Iterable[pd.DataFrame]:
    """The labels of :func:`read_labels_file`, ``rows`` at a time (same parsing, in file
    order): for files too large to hold."""
    path = _labels_path(path)
    suffix = path.suffix.lower()
    if suffix in JSON_LINES:
        chunks: Iterable[pd.DataFrame] = pd.read_json(
            path, lines=True, dtype={"event_id": str, "entity_id": str}, chunksize=rows)
    elif suffix == ".csv":
        chunks = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                             chunksize=rows)
    else:
        from streams.replay.batches import parquet_reader

        chunks = (b.to_pandas() for b in parquet_reader(path).iter_batches(batch_size=rows))
    for chunk in chunks:
        yield _normalised_labels(chunk, path)


def _labels_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"labels file not found: {path}")
    if path.suffix.lower() not in (*JSON_LINES, ".csv", ".parquet", ".pq"):
        raise ValueError(f"unknown labels file type {path.suffix.lower()!r}: use .jsonl, "
                         f".csv or .parquet")
    return path


def _normalised_labels(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    for col in ("event_id", "label"):
        if col not in frame.columns:
            raise ValueError(f"labels file {path} has no column {col!r}")
    frame["event_id"] = frame["event_id"].astype(str)
    frame["label"] = _labels(frame["label"], path)
    if "ts" in frame.columns:
        ts = frame.pop("ts")
        if ts.dtype == object or pd.api.types.is_string_dtype(ts):
            numeric = pd.to_numeric(ts, errors="coerce")
            ts = numeric if numeric.notna().all() else ts
        try:
            frame["label_ts"] = to_epoch_ms(ts, "ts").to_numpy()
        except ValueError as exc:
            raise ValueError(f"labels file {path}: {exc}") from None
    return frame


def _labels(column: pd.Series, path: Path) -> pd.Series:
    text = column.astype(str).str.strip().str.lower()
    value = text.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1})
    bad = value.isna()
    if bad.any():
        raise ValueError(f"labels file {path}: label must be 0 or 1, got "
                         f"{column[bad].iloc[0]!r} (row {int(bad.to_numpy().argmax()) + 1})")
    return value.astype("int64")


def labels_from_records(records: Iterable[RawRecord]) -> pd.DataFrame:
    """Labels from raw ``labels`` records; malformed ones are skipped (the worker DLQs them)."""
    return pd.DataFrame(list(_label_rows(records)), columns=_LABEL_COLUMNS)


def label_chunks(records: Iterable[RawRecord], rows: int = 200_000
                 ) -> Iterable[pd.DataFrame]:
    """:func:`labels_from_records`, ``rows`` at a time (records read lazily, e.g. a
    :class:`~streams.replay.topic.TopicHistory`): for a labels topic too large to hold."""
    return frames_of(_label_rows(records), _LABEL_COLUMNS, rows)


def frames_of(rows: Iterable[dict[str, Any]], columns: list[str], size: int
              ) -> Iterable[pd.DataFrame]:
    """Rows as frames of ``size`` rows (the last fewer), in order.

    >>> [len(f) for f in frames_of(({"a": i} for i in range(5)), ["a"], 2)]
    [2, 2, 1]
    """
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield pd.DataFrame(chunk, columns=columns)
            chunk = []
    if chunk:
        yield pd.DataFrame(chunk, columns=columns)


_LABEL_COLUMNS = ["event_id", "entity_id", "label", "label_ts"]


def _label_rows(records: Iterable[RawRecord]) -> Iterable[dict[str, Any]]:
    from pydantic import ValidationError

    from streams.records import Label

    for rec in records:
        try:
            label = Label.model_validate_json(rec.value)
        except ValidationError:
            continue
        yield {"event_id": label.event_id, "entity_id": label.entity_id,
               "label": label.value, "label_ts": label.ts}


#: Columns replay adds from the ``scored`` topic: what each event got online.
ONLINE_COLUMNS = {"score": "online_score", "decision": "online_decision",
                  "model_version": "online_model_version"}


def online_from_records(records: Iterable[RawRecord]) -> tuple[pd.DataFrame, int]:
    """``event_id`` and the online score, decision and model version of each scored
    record (the first record of an event wins, as the application saw it first), and how
    many records could not be read (plain JSON only; nothing is unpickled)."""
    rows: dict[str, dict[str, Any]] = {}
    reader = OnlineRows(records)
    for row in reader.rows():
        rows.setdefault(row["event_id"], row)
    frame = pd.DataFrame(list(rows.values()),
                         columns=["event_id", *ONLINE_COLUMNS.values()])
    return frame, reader.unreadable


class OnlineRows:
    """Scored records read as rows (``event_id`` and the online columns), every one in
    record order, counting those that cannot be read; :meth:`chunks` gives them ``rows``
    at a time (for a scored topic too large to hold)."""

    def __init__(self, records: Iterable[RawRecord]) -> None:
        self.records = records
        self.unreadable = 0

    def rows(self) -> Iterable[dict[str, Any]]:
        for rec in self.records:
            try:
                obj = json.loads(rec.value)
                yield {"event_id": str(obj["event_id"]), "online_score": float(obj["score"]),
                       "online_decision": int(obj["decision"]),
                       "online_model_version": str(obj["model_version"])}
            except (ValueError, TypeError, KeyError):
                self.unreadable += 1

    def chunks(self, rows: int = 200_000) -> Iterable[pd.DataFrame]:
        return frames_of(self.rows(), ["event_id", *ONLINE_COLUMNS.values()], rows)


# -- Kafka ------------------------------------------------------------------------------

#: Fetch sizes that let any record the broker accepts through: kafka-python refuses a
#: network frame above ``receive_message_max_bytes`` (1 MB by default), and a fetch response
#: holding one record near the broker's ``message.max.bytes`` is larger than that.
_FETCH_LIMITS = {"max_partition_fetch_bytes": 8 << 20, "fetch_max_bytes": 64 << 20,
                 "receive_message_max_bytes": (64 << 20) + (1 << 20)}

#: Decides, record by record, where a partition's read ends: True for the first record
#: that is past the end (it and every later record of that partition are left out).
StopRule = Callable[[RawRecord], bool]


def read_topic(
    config: Config,
    topic: str,
    *,
    from_broker_ms: int | None = None,
    stop: StopRule | None = None,
    progress: bool = False,
    timeout_seconds: float = 120.0,
) -> list[RawRecord]:
    """Records of ``topic`` partition by partition in offset order, from the first offset
    whose broker timestamp is at or after ``from_broker_ms`` (default: the beginning) to the
    end offsets of when the read began, or until ``stop`` says a partition is done."""
    consumer = KafkaConsumer(**kafka_python_options(config),
                             enable_auto_commit=False, max_poll_records=5000,
                             **_FETCH_LIMITS)
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            raise ValueError(f"topic {topic!r} does not exist on {config.broker}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        starts = consumer.beginning_offsets(tps)
        if from_broker_ms is not None:
            found = consumer.offsets_for_times({tp: max(0, from_broker_ms) for tp in tps})
            starts = {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        total = sum(max(0, ends[tp] - starts[tp]) for tp in tps)
        out: dict[int, list[RawRecord]] = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + timeout_seconds
        with tqdm(total=total, disable=not progress, unit="rec", desc=topic) as bar:
            while remaining and time.monotonic() < deadline:
                for tp, msgs in consumer.poll(timeout_ms=500).items():
                    if tp not in remaining:
                        continue
                    for msg in msgs:
                        rec = RawRecord(msg.value or b"", msg.partition, msg.offset,
                                        msg.timestamp)
                        if msg.offset >= ends[tp] or (stop is not None and stop(rec)):
                            remaining.discard(tp)
                            consumer.pause(tp)
                            break
                        out[tp.partition].append(rec)
                        bar.update(1)
                    if tp in remaining and consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        if remaining:
            raise TimeoutError(f"reading {topic!r} did not finish in {timeout_seconds:.0f}s")
        return [rec for p in sorted(out) for rec in out[p]]
    finally:
        consumer.close()
