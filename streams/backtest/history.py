"""The backtest's shell: history from files or Kafka, a config's replay, its backtest.

Python API::

    from streams.config import load_config
    from streams.backtest import evaluate, load_history

    candidate = load_config("candidate.yaml")
    history = load_history(candidate, events="history/events.jsonl",
                           labels="history/labels.jsonl")
    frame = evaluate(candidate, history, baseline=load_config("current.yaml"))
    frame[(frame.metric == "demographic_parity_ratio")]

``frame`` is tidy (:mod:`governance.metric_frame`): ``period, model, attribute, group,
metric, value, n, ci_low, ci_high``. Everything statistical happens in the pure core
(:mod:`governance.backtest`, :mod:`governance.metric_frame`, :mod:`monitors`); this module
reads, validates and replays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from features import late_mask, to_epoch_ms
from governance.backtest import BacktestRun, backtest
from governance.metric_frame import auto_period_ms, metric_frame
from governance.records import AuditRecord, ModelVersionRecord
from streams.config import Config
from streams.replay import (
    RawRecord,
    labels_from_records,
    read_events_file,
    read_events_topic,
    read_labels_file,
    read_topic,
    replay,
)
from streams.validation import EventValidator, ValidEvent

Order = Literal["arrival", "event-time"]


@dataclass
class History:
    """Raw events (validated per config later) and labels with their times."""

    records: list[RawRecord]
    #: ``event_id, label, label_ts`` (epoch ms).
    labels: pd.DataFrame
    source: str
    #: Production records, when read from Kafka (``model.versions``, ``model.audit``).
    versions: list[ModelVersionRecord] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)


@dataclass
class ConfigBacktest:
    """One config's backtest over a history."""

    config: Config
    run: BacktestRun
    #: Every accepted event with its point-in-time features (the replay's frame).
    features: pd.DataFrame
    #: One row per rejected record: ``time_ms`` (event-time clock), ``reason``.
    rejections: pd.DataFrame
    received: int = 0


def normalise_labels(frame: pd.DataFrame, where: str = "labels") -> pd.DataFrame:
    """``event_id, label, label_ts`` (epoch ms) from a labels file's or topic's frame."""
    if "label_ts" not in frame.columns:
        if "ts" not in frame.columns:
            raise ValueError(f"{where} have no time column ('ts'): a backtest learns each "
                             f"label when its time has come")
        frame = frame.rename(columns={"ts": "label_ts"})
    out = frame[["event_id", "label", "label_ts"]].copy()
    out["event_id"] = out["event_id"].astype(str)
    out["label_ts"] = to_epoch_ms(out["label_ts"], "label_ts").astype("int64")
    bad = ~out["label"].isin([0, 1])
    if bad.any():
        raise ValueError(f"{where}: {int(bad.sum())} label(s) are not 0 or 1")
    out["label"] = out["label"].astype("int64")
    return out


def load_history(config: Config, *, events: str | Path | None = None,
                 labels: str | Path | None = None, from_kafka: bool = False,
                 since_ms: int | None = None, until_ms: int | None = None,
                 progress: bool = False) -> History:
    """Events and labels from files, or every topic the report needs from Kafka."""
    if from_kafka:
        # Event-time bounds: from the broker offsets where such events can start (allowing
        # for lateness) until each partition's watermark passes ``until_ms``.
        records = read_events_topic(config, since_ms=since_ms, until_ms=until_ms,
                                    progress=progress)
        label_frame = labels_from_records(read_topic(config, config.topics.labels,
                                                     progress=progress))
        versions, audit = read_governance(config)
        return History(records, normalise_labels(label_frame, "the labels topic"),
                       f"kafka {config.broker}", versions, audit)
    if events is None or labels is None:
        raise ValueError("give --events and --labels, or --from-kafka")
    return History(read_events_file(events, config),
                   normalise_labels(read_labels_file(labels), f"labels file {labels}"),
                   f"{events} + {labels}")


def read_governance(config: Config) -> tuple[list[ModelVersionRecord], list[AuditRecord]]:
    """The latest record of each version on ``model.versions`` and every audit record
    (empty when the topics do not exist; undecodable records are skipped, never run)."""
    from pydantic import ValidationError

    from streams.topics import read_all

    versions: dict[str, ModelVersionRecord] = {}
    for _, _, value, _ in read_all(config, config.topics.model_versions):
        if value:
            try:
                record = ModelVersionRecord.model_validate_json(value)
            except ValidationError:
                continue
            versions[record.version] = record
    audit = []
    for _, _, value, _ in read_all(config, config.topics.model_audit):
        if value:
            try:
                audit.append(AuditRecord.model_validate_json(value))
            except ValidationError:
                continue
    return list(versions.values()), audit


def _validate(config: Config, records: list[RawRecord]
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each record through the worker's validator: the accepted events' raw attributes,
    and the rejected records by reason, dated on the event-time clock of their partition
    (the newest event time accepted before them there; before any, the first one after)."""
    validator = EventValidator(config.event)
    wall_ms = time.time_ns() // 1_000_000
    accepted: list[dict[str, object]] = []
    rejected: list[tuple[int, int | None, str]] = []
    clock: dict[int, int] = {}
    for rec in records:
        checked = validator.validate(rec.value, rec.timestamp_ms or wall_ms)
        if isinstance(checked, ValidEvent):
            accepted.append({"event_id": checked.event_id, "ts": checked.ts_ms,
                             "_partition": rec.partition, **checked.attrs})
            clock[rec.partition] = max(clock.get(rec.partition, checked.ts_ms),
                                       checked.ts_ms)
        else:
            rejected.append((rec.partition, clock.get(rec.partition), checked.reason))
    attrs = pd.DataFrame(accepted)
    first: dict[int, int] = {}
    if len(attrs):
        first = attrs.groupby("_partition")["ts"].first().astype(int).to_dict()
    fallback = int(attrs["ts"].min()) if len(attrs) else 0
    rows = [(first.get(p, fallback) if t is None else t, reason)
            for p, t, reason in rejected]
    if len(attrs):
        late = late_mask(attrs["ts"].to_numpy(), attrs["_partition"].to_numpy(),
                         config.event.allowed_lateness_ms)
        rows += [(int(t), "late") for t in attrs["ts"].to_numpy()[late]]
    return attrs, pd.DataFrame(rows, columns=["time_ms", "reason"])


def run_backtest(config: Config, history: History, order: Order = "arrival",
                 progress: bool = False) -> ConfigBacktest:
    """Replay ``config``'s features over the history, then backtest its model."""
    result = replay(config, history.records, order=order, progress=progress)
    attrs, rejections = _validate(config, history.records)
    events = result.frame
    group_field = config.event.group_field
    wanted = [a for a in config.monitors.sensitive_attributes
              if a != group_field and a not in events.columns and a in attrs.columns]
    if wanted:
        events = events.merge(attrs[["event_id", *wanted]].drop_duplicates("event_id"),
                              on="event_id", how="left")
    if group_field in config.monitors.sensitive_attributes and group_field != "group":
        events = events.assign(**{group_field: events["group"]})
    run = backtest(events, history.labels, spec=config.model.spec,
                   promotion=config.model.promotion, feature_set=config.features.identity,
                   features=config.features.names, label_ttl_ms=config.model.label_ttl_ms,
                   sensitive_attributes=config.monitors.sensitive_attributes,
                   training_topic=config.topics.training,
                   intersections=config.monitors.intersections,
                   favourable_outcome=config.monitors.favourable_outcome)
    return ConfigBacktest(config, run, result.frame, rejections, result.received)


def period_of(runs: list[ConfigBacktest], period: int | str | None) -> int:
    """``period`` in ms, or the automatic one for the runs' time span ("auto"/None)."""
    if isinstance(period, int):
        return period
    if period not in (None, "auto"):
        from features.spec import parse_duration_ms

        return parse_duration_ms(period)
    ts = np.concatenate([r.run.scored["ts"].to_numpy(dtype="int64") for r in runs])
    return auto_period_ms(int(ts.min()), int(ts.max())) if len(ts) else 86_400_000


def metrics_of(runs: dict[str, ConfigBacktest], period_ms: int, *, bootstrap: int = 200,
               seed: int = 0) -> pd.DataFrame:
    """The tidy frame of several named backtests, one after the other."""
    frames = [metric_frame(r.run.scored,
                           attributes=r.config.monitors.sensitive_attributes,
                           min_group_examples=r.config.model.promotion.min_group_examples,
                           period_ms=period_ms, model=name, bootstrap=bootstrap, seed=seed)
              for name, r in runs.items()]
    return pd.concat(frames, ignore_index=True)


def evaluate(candidate: Config, history: History, *, baseline: Config | None = None,
             period: int | str | None = "auto", order: Order = "arrival",
             bootstrap: int = 200, seed: int = 0) -> pd.DataFrame:
    """The candidate's (and the baseline's) backtest, as one tidy frame per period."""
    runs = {"candidate": run_backtest(candidate, history, order)}
    if baseline is not None:
        runs["baseline"] = run_backtest(baseline, history, order)
    return metrics_of(runs, period_of(list(runs.values()), period), bootstrap=bootstrap,
                      seed=seed)


def dlq_counts(rejections: pd.DataFrame, period_ms: int) -> pd.DataFrame:
    """Rejected records per period and reason: ``period, reason, count``."""
    if rejections.empty:
        return pd.DataFrame(columns=["period", "reason", "count"])
    start = rejections["time_ms"] - rejections["time_ms"] % period_ms
    out = rejections.assign(period=pd.to_datetime(start, unit="ms", utc=True))
    return (out.groupby(["period", "reason"]).size().rename("count").reset_index())

