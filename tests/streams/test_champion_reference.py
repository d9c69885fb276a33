"""The scorer compares drift with the champion's reference, read from its version record.

No Kafka: ``model.versions`` records are those governance's learner core writes, given a
``drift_reference`` (and a ``drift_baseline``) built by monitors' own
:func:`monitors.reference_from_examples`; the monitors are the real ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Any

from prometheus_client import CollectorRegistry

from governance import ModelSpec
from governance.records import Evaluation, GateVerdict, ModelVersionRecord, dumps
from governance.sizes import RECORD_BUDGET_BYTES
from monitors import reference_from_examples
from monitors.config import MonitorsConfig
from monitors.metrics import Metrics
from monitors.monitoring import Monitoring
from monitors.sketch import DriftReference, max_encoded_bytes
from streams.scorer.champion import (
    Champion,
    DriftReferences,
    ModelFollower,
    VersionBoard,
    evaluation_roc_auc,
    read_version,
)
from streams.scorer.observe import ScorerMetrics
from tests.streams.test_champion import version_records

CONFIG = MonitorsConfig(drift={"reference": {"source": "champion", "min_examples": 500}})


def reference(n: int, shift: float = 0.0, seed: int = 0) -> DriftReference:
    rng = random.Random(seed)
    features = [{"x": rng.gauss(shift, 1.0)} for _ in range(n)]
    return reference_from_examples(CONFIG, features, [rng.random() for _ in range(n)],
                                   [0] * n, [{}] * n, feature_names=["x"])


def evaluation(version: str, auc: float | None) -> dict[str, Any]:
    """An evaluation whose roc_auc gate judged the version at ``auc`` (none if None)."""
    gates = [] if auc is None else [GateVerdict(gate="roc_auc", outcome="pass", value=auc,
                                                threshold=0.7, detail="test")]
    return Evaluation(candidate=version, champion=None, examples=1000, from_offset=0,
                      to_offset=999, gates=gates, outcome="pass").model_dump(mode="json")


def with_fields(raw: bytes, **fields: Any) -> bytes:
    """The record with these fields set (the artifact, and so its SHA-256, unchanged)."""
    return json.dumps({**json.loads(raw), **fields}).encode()


def champion_index(records: list[bytes]) -> int:
    """The last record that makes a trained version champion."""
    return max(i for i, r in enumerate(records)
               if json.loads(r)["status"] == "champion" and json.loads(r)["sequence"] > 0)


class Follow:
    """A follower as the scorer wires it, with real monitors behind ScorerMetrics."""

    def __init__(self, config: MonitorsConfig = CONFIG) -> None:
        self.registry = CollectorRegistry()
        metrics = Metrics(self.registry)
        self.monitoring = Monitoring(config, ["x"], metrics)
        self.observer = ScorerMetrics(metrics, self.monitoring, "fs")
        self.board = VersionBoard("fs", ModelSpec())
        self.serving = [Champion.bootstrap(ModelSpec(), "fs")]
        self.why: list[str] = []
        self.adopted: list[DriftReferences] = []

        def refused(why: str) -> None:
            self.observer.version_refused()
            self.why.append(why)

        def adopt(references: DriftReferences) -> None:
            self.adopted.append(references)
            self.observer.drift_references(references)

        self.follower = ModelFollower(self.board, lambda: self.serving[-1].version,
                                      self.serving.append, refused, adopt_references=adopt,
                                      reference_min_examples=500)

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def test_old_records_read_and_new_ones_carry_both_references_as_strict_json() -> None:
    records = version_records()
    # A record from before issue 15 has neither field (the learner now writes them).
    before = {k: v for k, v in json.loads(records[-1]).items()
              if k not in ("drift_reference", "drift_baseline")}
    old = read_version(json.dumps(before).encode())
    assert old.drift_reference is None and old.drift_baseline is None
    ref, pinned = reference(2000), reference(1000, seed=1)
    raw = with_fields(records[-1], drift_reference=ref.to_json(),
                      drift_baseline=pinned.to_json())
    record = read_version(raw)
    assert record.drift_reference is not None
    assert record.drift_reference["format"] == "streambed-drift-reference"
    assert DriftReference.from_json(record.drift_reference) == ref
    assert DriftReference.from_json(record.drift_baseline or {}) == pinned
    again = dumps(record)  # strict JSON: allow_nan=False
    assert ModelVersionRecord.model_validate_json(again) == record
    # Bounded: two references at their size bound (the quickstart's 5 features, the score,
    # 11 groups) beside everything else stay within the record budget.
    bound = max_encoded_bytes([f"feature_{i:02d}" for i in range(5)], ks_bins=100,
                              max_categories=20, max_examples=2000,
                              impact_keys=[f"group=G{i}" for i in range(11)])
    assert len(again) - len(ref.encode()) - len(pinned.encode()) + 2 * bound \
        < RECORD_BUDGET_BYTES / 2


def test_start_sets_the_champions_reference_and_its_evaluation() -> None:
    f = Follow()
    records = version_records()
    i = champion_index(records)
    ref = reference(2000)
    records[i] = with_fields(records[i], drift_reference=ref.to_json(),
                             evaluation=evaluation(json.loads(records[i])["version"], 0.83))
    f.follower.take(records[:1], caught_up=False)
    assert f.adopted == [], "nothing before the topic was read to its end"
    f.follower.take(records[1:], caught_up=True)
    (got,) = f.adopted
    champion = f.board.champion_record()
    assert champion is not None and got.champion == champion.version
    assert got.reference == ref and got.reference_from == champion.version
    sha = hashlib.sha256(ref.encode()).hexdigest()
    info = f.observer.reference_info()
    assert info["sha256"] == sha and info["examples"] == 2000 and info["refused"] == []
    assert f.monitoring.reference_version == champion.version
    f.monitoring.refresh(now=1.0)
    assert f.value("streambed_feature_drift_reference_events", feature="x") == 2000
    assert got.evaluation_roc_auc == evaluation_roc_auc(champion) == 0.83
    assert f.value("streambed_champion_evaluation_roc_auc_ratio") == 0.83
    f.follower.take([], caught_up=True)
    f.follower.take([records[i]], caught_up=True)
    assert len(f.adopted) == 1, "the same references again: the windows are kept"


def test_a_version_cut_from_too_few_examples_uses_its_parents() -> None:
    f = Follow()
    records = version_records()
    i = champion_index(records)
    champion = json.loads(records[i])
    parent = max(j for j, r in enumerate(records)
                 if json.loads(r)["version"] == champion["parent"])
    big, small = reference(2000), reference(100, seed=3)
    records[parent] = with_fields(records[parent], drift_reference=big.to_json())
    records[i] = with_fields(records[i], drift_reference=small.to_json())
    f.follower.take(records, caught_up=True)
    (got,) = f.adopted
    assert got.reference == big and got.reference_from == champion["parent"]
    assert f.observer.reference_info()["version"] == champion["parent"]
    # None of its own: the parent's too.
    records[i] = with_fields(records[i], drift_reference=None)
    g = Follow()
    g.follower.take(records, caught_up=True)
    assert g.adopted[0].reference == big


def test_a_reference_that_does_not_decode_is_counted_and_drift_keeps_its_fallback() -> None:
    f = Follow()
    records = version_records()
    i = champion_index(records)
    broken = reference(2000).to_json()
    broken["features"]["x"]["counts"] = [-1]
    records[i] = with_fields(records[i], drift_reference=broken,
                             drift_baseline={"format": "something else"})
    f.follower.take(records, caught_up=True)
    assert len(f.why) == 2 and all("drift reference refused" in w for w in f.why)
    assert f.value("streambed_model_versions_refused_total") == 2
    assert f.adopted[0].reference is None
    assert f.monitoring.reference_version is None
    info = f.observer.reference_info()
    assert info["sha256"] is None and len(info["refused"]) == 2
    for k in range(20):  # drift still runs on the first events, as before
        f.monitoring.on_scored(features={"x": float(k)}, score=0.5, decision=0, groups={},
                               model_version=f.serving[-1].version, now=float(k))
    f.monitoring.refresh(now=20.0)
    assert f.monitoring.snapshot()["feature_drift"]["x"]["reference_source"] == "first_events"


def test_a_pinned_baseline_is_compared_too_and_a_change_is_followed() -> None:
    f = Follow()
    records = version_records()
    i = champion_index(records)
    ref, pinned = reference(2000), reference(2000, shift=1.0, seed=5)
    records[i] = with_fields(records[i], drift_reference=ref.to_json())
    f.follower.take(records, caught_up=True)
    assert f.adopted[-1].baseline is None
    f.follower.take([with_fields(records[i], drift_baseline=pinned.to_json())], caught_up=True)
    assert len(f.adopted) == 2 and f.adopted[-1].baseline == pinned
    info = f.observer.reference_info()
    assert info["baseline_sha256"] == hashlib.sha256(pinned.encode()).hexdigest()
    # Each comparison at half the rate: a feature's false alarms per window stay as stated.
    assert f.monitoring._features["x"].alpha == CONFIG.drift.false_alarm_rate / 2


def test_other_sources_keep_their_reference_but_get_the_champions_evaluation() -> None:
    f = Follow(MonitorsConfig(drift={"reference": {"source": "first_events"}}))
    records = version_records()
    i = champion_index(records)
    records[i] = with_fields(records[i], drift_reference=reference(2000).to_json())
    f.follower.take(records, caught_up=True)
    assert f.monitoring.reference_version is None
    assert f.observer.reference_info()["source"] == "first_events"
    exported = f.value("streambed_champion_evaluation_roc_auc_ratio")
    assert exported is not None and math.isnan(exported), "no evaluation on record: NaN"


def test_the_evaluation_auc_is_the_roc_auc_gate_value_or_the_legacy_window() -> None:
    records = version_records()
    raw = records[champion_index(records)]
    version = json.loads(raw)["version"]
    assert evaluation_roc_auc(read_version(with_fields(raw, evaluation=None))) is None
    assert evaluation_roc_auc(read_version(with_fields(
        raw, evaluation=evaluation(version, 0.77)))) == 0.77
    legacy = evaluation(version, None)
    legacy["candidate_performance"] = {"roc_auc": 0.71, "log_loss": 0.5, "examples": 900,
                                       "positives": 90, "negatives": 810}
    assert evaluation_roc_auc(read_version(with_fields(raw, evaluation=legacy))) == 0.71
