"""Backtest: run a config's model over history exactly as the learner would, prequentially.

Input: one row per accepted event with its point-in-time features (from
:func:`streams.replay.replay`) and the labels that came for them. Output: every event's
score, given by the model *as it was at the event's time*, and what the learner would
have published (versions, promotions, holds).

The timeline merges two clocks, both event-time epoch milliseconds:

- each event at its own time ``ts``: the current challenger scores it (that is the
  backtest's score), and the current champion scores it too (what a scorer would have
  served, recorded in the training example as the scorer records it), and so does every
  version then in shadow (its ``shadow_scores``: the only evidence the gates judge);
- each label at ``max(label_ts, ts)``: its time has come, so the example (the features
  as scored, the label) is learned by :meth:`governance.LearnerCore.learn`, the learner's
  own code, in that order. The learner cuts versions and judges them with its gates.

At equal times events are scored before labels are learned ("test, then train"), so an
event is never scored by a model that learned its own label, and a label whose time has
not come is not learned. Labels follow the scorer's join rules
(:mod:`features.label_time`): the first label of an event wins (later ones are
``duplicate``), a label beyond ``label_ttl_ms`` of its event is ``expired``, a label of
no known event is ``unmatched``; only ``joined`` labels are learned and evaluated.

>>> import pandas as pd
>>> from governance import ModelSpec, PromotionConfig
>>> events = pd.DataFrame({"event_id": ["a", "b", "c"], "entity_id": ["u", "u", "v"],
...                        "ts": [0, 10, 20], "x": [1.0, 2.0, 3.0], "group": ["A"] * 3})
>>> labels = pd.DataFrame({"event_id": ["a", "b"], "label": [1, 0], "label_ts": [10, 30]})
>>> run = backtest(events, labels, spec=ModelSpec(), promotion=PromotionConfig(),
...                feature_set="fs", features=["x"], label_ttl_ms=1_000,
...                sensitive_attributes={"group": ["A"]})
>>> run.scored[["event_id", "score", "learned_before", "label", "training_offset"]]
  event_id    score  learned_before  label  training_offset
0        a  0.50000               0      1                0
1        b  0.50000               0      0                1
2        c  0.50125               1   <NA>             <NA>
>>> # b at t=10 is scored before a's label (t=10) is learned; c at 20 after it
>>> dict(run.labels)
{'joined': 2}
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.label_time import join_outcome
from governance.artifact import LogisticModel
from governance.config import ModelSpec, PromotionConfig
from governance.evaluation import bounded_group
from governance.learner import LearnerCore, Output
from governance.records import AuditRecord, ModelVersionRecord, TrainingExample

#: Columns of :attr:`BacktestRun.scored`, before one column per sensitive attribute.
SCORED_COLUMNS = ["event_id", "entity_id", "ts", "score", "decision", "learned_before",
                  "served_score", "served_decision", "served_version", "label", "label_ts",
                  "training_offset"]


@dataclass
class BacktestRun:
    """What a backtest produced."""

    #: One row per event, in timeline order: ``SCORED_COLUMNS`` plus each sensitive
    #: attribute's bounded group. ``score``/``decision``: the challenger at the event's time
    #: (``learned_before`` examples learned then); ``served_*``: the champion at that time;
    #: ``label``/``label_ts``: the joined label (NA if none); ``training_offset``: its
    #: position in the training log the backtest built (NA if not learned).
    scored: pd.DataFrame
    #: Every record the learner would have published, in order.
    outputs: list[Output] = field(default_factory=list)
    #: Labels by join outcome: joined, duplicate, expired, unmatched.
    labels: Counter[str] = field(default_factory=Counter)
    #: The learner core at the end (its challenger, its versions).
    core: LearnerCore | None = None

    @property
    def versions(self) -> list[ModelVersionRecord]:
        return [r for r in self.outputs if isinstance(r, ModelVersionRecord)]

    @property
    def audit(self) -> list[AuditRecord]:
        return [r for r in self.outputs if isinstance(r, AuditRecord)]


def _plain(value: Any) -> float | int | None:
    """A feature value as the scored record carries it: null for NaN/NA/None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value  # type: ignore[no-any-return]


def _first_labels(labels: pd.DataFrame, known: set[str], events_ts: Mapping[str, int],
                  label_ttl_ms: int, counts: Counter[str]) -> dict[str, tuple[int, int]]:
    """event_id -> (label, label_ts) of the labels that join, counting every outcome."""
    joined: dict[str, tuple[int, int]] = {}
    seen: set[str] = set()
    order = np.argsort(labels["label_ts"].to_numpy(dtype="int64"), kind="stable")
    ids = labels["event_id"].astype(str).to_numpy()[order]
    values = labels["label"].to_numpy()[order]
    times = labels["label_ts"].to_numpy(dtype="int64")[order]
    for event_id, value, label_ts in zip(ids, values, times, strict=True):
        if event_id not in known:
            counts["unmatched"] += 1
            continue
        if event_id in seen:
            counts["duplicate"] += 1
            continue
        seen.add(event_id)
        outcome = join_outcome(event_ts_ms=events_ts[event_id], label_ts_ms=int(label_ts),
                               label_ttl_ms=label_ttl_ms)
        counts[outcome] += 1
        if outcome == "joined":
            joined[event_id] = (int(value), int(label_ts))
    return joined


def backtest(events: pd.DataFrame, labels: pd.DataFrame, *, spec: ModelSpec,
             promotion: PromotionConfig, feature_set: str, features: Sequence[str],
             label_ttl_ms: int, sensitive_attributes: Mapping[str, Sequence[str]],
             training_topic: str | None = "backtest",
             intersections: Sequence[Sequence[str]] = (),
             favourable_outcome: str = "below_threshold") -> BacktestRun:
    """Score every event with the model as it was at its time, learning labels as they come.

    ``events``: ``event_id, entity_id, ts`` (epoch ms), the ``features`` columns and one
    column per sensitive attribute (raw values; missing columns count as ``unknown``).
    The timeline is event time; events with equal times keep their order in ``events``
    (the first of a repeated ``event_id`` is kept, as the scorer rejects the others).
    ``labels``: ``event_id, label`` (0/1) and ``label_ts`` (epoch ms).
    """
    attributes = {a: list(g) for a, g in sensitive_attributes.items()}
    frame = events.drop_duplicates("event_id", keep="first")
    frame = frame.iloc[np.argsort(frame["ts"].to_numpy(dtype="int64"), kind="stable")]
    frame = frame.reset_index(drop=True)
    n = len(frame)
    ids = frame["event_id"].astype(str).tolist()
    ts = frame["ts"].to_numpy(dtype="int64")
    counts: Counter[str] = Counter()
    joined = _first_labels(labels, set(ids), dict(zip(ids, ts.tolist(), strict=True)),
                           label_ttl_ms, counts)
    rows = frame[list(features)].astype(object).to_numpy()
    groups = _groups(frame, attributes)

    # The merged timeline: (time, 0 = score an event | 1 = learn a label, event index).
    timeline = [(int(t), 0, i) for i, t in enumerate(ts)]
    index_of = {e: i for i, e in enumerate(ids)}
    timeline += [(max(label_ts, int(ts[index_of[e]])), 1, index_of[e])
                 for e, (_, label_ts) in joined.items()]
    timeline.sort()

    core = LearnerCore(spec=spec, promotion=promotion, feature_set=feature_set,
                       sensitive_attributes=attributes, training_topic=training_topic,
                       intersections=intersections, favourable_outcome=favourable_outcome)
    frozen: dict[str, LogisticModel] = {}
    outputs: list[Output] = []
    score = np.full(n, np.nan)
    served = np.full(n, np.nan)
    learned_before = np.zeros(n, dtype=np.int64)
    served_version: list[str | None] = [None] * n
    offset = np.full(n, -1, dtype=np.int64)
    as_scored: list[dict[str, Any] | None] = [None] * n
    shadow_scores: list[dict[str, float]] = [{} for _ in range(n)]
    next_offset = 0
    for time_ms, kind, i in timeline:
        if kind == 0:
            if core.champion is None:
                outputs += core.start(time_ms)
            values = {name: _plain(v) for name, v in zip(features, rows[i], strict=True)}
            as_scored[i] = values
            score[i] = core.challenger.score(values)[0]
            learned_before[i] = core.examples_learned
            version = core.champion or ""
            served[i], served_version[i] = _frozen(core, frozen, version).score(values)[0], \
                version
            shadow_scores[i] = {v: _frozen(core, frozen, v).score(values)[0]
                                for v in core.shadows()}
            continue
        label, label_ts = joined[ids[i]]
        example = TrainingExample(
            event_id=ids[i], entity_id=str(frame.at[i, "entity_id"]),
            features=as_scored[i], label=label, score=float(served[i]),  # type: ignore[arg-type]
            decision=int(served[i] >= spec.threshold), model_version=served_version[i] or "",
            feature_set=feature_set, groups=groups[i], event_ts=int(ts[i]),
            label_ts=label_ts, shadow_scores=shadow_scores[i])
        outputs += core.learn(next_offset, example, now_ms=time_ms)
        offset[i] = next_offset
        next_offset += 1

    threshold = spec.threshold
    out = pd.DataFrame({
        "event_id": ids, "entity_id": frame["entity_id"].astype(str).to_numpy(), "ts": ts,
        "score": score, "decision": (score >= threshold).astype(np.int64),
        "learned_before": learned_before,
        "served_score": served, "served_decision": (served >= threshold).astype(np.int64),
        "served_version": served_version,
        "label": pd.array([joined[e][0] if e in joined else None for e in ids],
                          dtype="Int64"),
        "label_ts": pd.array([joined[e][1] if e in joined else None for e in ids],
                             dtype="Int64"),
        "training_offset": pd.array(np.where(offset >= 0, offset, 0), dtype="Int64"),
    })
    out.loc[offset < 0, "training_offset"] = pd.NA
    for attribute in attributes:
        out[attribute] = [g[attribute] for g in groups]
    return BacktestRun(scored=out, outputs=outputs, labels=counts, core=core)


def _frozen(core: LearnerCore, cache: dict[str, LogisticModel], version: str
            ) -> LogisticModel:
    """A published version's model, as a scorer rebuilds it from its artifact (cached)."""
    model = cache.get(version)
    if model is None:
        model = cache[version] = LogisticModel.from_artifact(core.version(version).artifact)
    return model


def _groups(frame: pd.DataFrame, attributes: Mapping[str, Sequence[str]]
            ) -> list[dict[str, str]]:
    """Each event's bounded group per sensitive attribute (``unknown`` when absent)."""
    columns = {a: (frame[a].astype(object).tolist() if a in frame else [None] * len(frame))
               for a in attributes}
    return [{a: bounded_group(_plain(columns[a][i]), g) for a, g in attributes.items()}
            for i in range(len(frame))]
