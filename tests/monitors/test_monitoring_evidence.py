"""The Monitoring façade on evidence: one reference for every scorer and restart, drift
verdicts as gauges, impact on the favourable outcome with intersections, CBPE exported."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from monitors import Metrics, Monitoring, MonitorsConfig
from monitors.sketch import DriftReference
from tests.monitors.test_monitoring import sample

CONFIG = {
    "sensitive_attributes": {"group": ["A", "B"], "age": ["young", "old"]},
    "intersections": [["group", "age"]],
    "drift": {"window_seconds": 10, "window_buckets": 5, "min_window_events": 50},
    "impact": {"window_seconds": 100, "window_buckets": 10, "min_group_size": 30},
    "performance": {"min_labels": 30, "estimate_events": 1000, "estimate_every_seconds": 0,
                    "calibration_min_labels": 200},
}


def make(estimate_every_seconds: float = 0.0) -> tuple[Monitoring, CollectorRegistry]:
    registry = CollectorRegistry()
    raw = {**CONFIG, "performance": {**CONFIG["performance"],  # type: ignore[dict-item]
                                     "estimate_every_seconds": estimate_every_seconds}}
    config = MonitorsConfig.model_validate(raw)
    return Monitoring(config, ["amount"], Metrics(registry)), registry


def batch(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[SimpleNamespace]:
    out = []
    for _ in range(n):
        amount = float(rng.normal(shift))
        score = float(1 / (1 + np.exp(-amount)))
        out.append(SimpleNamespace(
            features={"amount": amount}, score=score, decision=int(score >= 0.5),
            groups={"group": "A" if rng.random() < 0.5 else "B",
                    "age": "young" if rng.random() < 0.5 else "old"}))
    return out


def champion_reference(rng: np.random.Generator) -> DriftReference:
    rows = batch(rng, 2000)
    return DriftReference.from_columns({"amount": [r.features["amount"] for r in rows]},
                                       [r.score for r in rows])


def run(m: Monitoring, rng: np.random.Generator, windows: int, shift: float = 0.0,
        start: int = 0) -> None:
    for w in range(start, start + windows):
        m.on_scored_batch(batch(rng, 200, shift), model_version="v1", now=10.0 * w + 1)
        m.refresh(10.0 * (w + 1))


def test_two_scorers_and_a_restart_compare_with_the_champions_reference() -> None:
    """Whatever each process saw first, with source champion they all judge against the
    reference from the version record: the same reference counts, the same verdicts on
    the same traffic."""
    reference = champion_reference(np.random.default_rng(0))
    scorers = []
    for seed in (1, 2):
        m, registry = make(estimate_every_seconds=1e9)
        rng = np.random.default_rng(seed)
        run(m, rng, 2, shift=2.0)  # each saw different (drifted) first events
        m.set_reference(reference, model_version="v1")
        scorers.append((m, registry))
    traffic = np.random.default_rng(3)
    rows = [batch(traffic, 200) for _ in range(6)] + [batch(traffic, 200, 1.0)]
    for w, part in enumerate(rows, start=2):
        for m, _ in scorers:
            m.on_scored_batch(part, model_version="v1", now=10.0 * w + 1)
            m.refresh(10.0 * (w + 1))
    texts = [generate_latest(r).decode() for _, r in scorers]
    for name in ("streambed_feature_drift_statistic", "streambed_feature_drift_detected",
                 "streambed_feature_drift_reference_events"):
        a, b = (sample(t, name, feature="amount") for t in texts)
        assert a == b, name
    assert sample(texts[0], "streambed_feature_drift_reference_events", feature="amount") == 2000
    assert sample(texts[0], "streambed_feature_drift_detected", feature="amount") == 1
    assert sample(texts[0], "streambed_prediction_drift_detected") == 1
    snap = scorers[0][0].snapshot()
    assert snap["feature_drift"]["amount"]["reference_source"] == "champion"


def test_stationary_traffic_keeps_the_verdict_gauges_mostly_at_zero() -> None:
    """Not "every gauge stays 0": the rate of flagged windows is measured."""
    m, registry = make(estimate_every_seconds=1e9)
    rng = np.random.default_rng(4)
    m.set_reference(champion_reference(rng), model_version="v1")
    flagged = judged = 0
    for w in range(150):
        m.on_scored_batch(batch(rng, 200), model_version="v1", now=10.0 * w + 1)
        m.refresh(10.0 * (w + 1))
        text = generate_latest(registry).decode()
        if not math.isnan(sample(text, "streambed_feature_drift_statistic", feature="amount")):
            judged += 1
            flagged += int(sample(text, "streambed_feature_drift_detected", feature="amount"))
    assert judged >= 140 and flagged <= 5, f"{flagged} of {judged}"


def test_impact_is_on_the_favourable_outcome_and_intersections_are_attributes() -> None:
    m, registry = make()
    rng = np.random.default_rng(5)
    rows = batch(rng, 400)
    m.on_scored_batch(rows, model_version="v1", now=1.0)
    m.refresh(2.0)
    text = generate_latest(registry).decode()
    a = [r for r in rows if r.groups["group"] == "A"]
    favourable_a = sum(r.decision == 0 for r in a)  # below_threshold: decision 0
    assert sample(text, "streambed_group_favourable_decisions_total",
                  attribute="group", group="A") == favourable_a
    assert math.isclose(sample(text, "streambed_group_selection_rate_ratio",
                               attribute="group", group="A"), favourable_a / len(a))
    young_b = [r for r in rows if r.groups == {"group": "B", "age": "young"}]
    assert sample(text, "streambed_group_decisions_total", attribute="group×age",
                  group="B×young", decision="1") == sum(r.decision for r in young_b)
    assert not math.isnan(sample(text, "streambed_demographic_parity_ratio",
                                 attribute="group×age"))


def test_estimates_before_labels_are_exported_with_intervals_and_checked_on_labels() -> None:
    m, registry = make()
    rng = np.random.default_rng(6)
    rows = batch(rng, 1000)
    m.on_scored_batch(rows, model_version="v1", now=1.0)
    m.set_champion_evaluation(0.8)
    m.refresh(1.5)  # no label yet: estimated on the raw scores, and said so, unchecked
    estimate = m.snapshot()["performance"]["estimate"]
    assert estimate["probabilities"].startswith("raw") and estimate["calibrator"] is None
    assert estimate["reliable"]
    for r in rows[:600]:
        m.on_label(score=r.score, decision=r.decision, label=int(rng.random() < r.score),
                   groups=r.groups, model_version="v1", now=2.0)
    m.refresh(3.0)
    assert m.snapshot()["performance"]["estimate"]["calibrator"]["labelled_examples"] == 600
    text = generate_latest(registry).decode()
    low, mid, high = (sample(text, "streambed_estimated_roc_auc_ratio", bound=b)
                      for b in ("lower", "estimate", "upper"))
    assert low < mid < high
    assert sample(text, "streambed_performance_estimate_reliable") == 1
    assert abs(sample(text, "streambed_estimated_roc_auc_gap")) < 0.1
    assert sample(text, "streambed_champion_evaluation_roc_auc_ratio") == 0.8
    assert not math.isnan(sample(text, "streambed_estimated_group_true_positive_rate_ratio",
                                 attribute="group", group="A", bound="estimate"))
    young_a = [r for r in rows if r.groups == {"group": "A", "age": "young"}]
    assert math.isclose(
        sample(text, "streambed_estimated_group_favourable_rate_ratio", attribute="group×age",
               group="A×young", bound="estimate"),
        sum(r.decision == 0 for r in young_a) / len(young_a))
    # A concept shift: the labels stop following the scores. While the labelled window
    # straddles it, the calibrator fitted on its older half fails on its newer half.
    for r in rows[600:]:
        m.on_label(score=r.score, decision=r.decision, label=int(rng.random() < 1 - r.score),
                   groups=r.groups, model_version="v1", now=4.0)
    m.refresh(5.0)
    text = generate_latest(registry).decode()
    assert sample(text, "streambed_performance_estimate_reliable") == 0
    assert sample(text, "streambed_estimated_roc_auc_covered") == 0
    # Once the whole window is after the shift the calibrator has learned the new relation
    # (a negative slope): the estimate follows it and holds again.
    for r in rows[:600]:
        m.on_label(score=r.score, decision=r.decision, label=int(rng.random() < 1 - r.score),
                   groups=r.groups, model_version="v1", now=6.0)
    m.refresh(7.0)
    text = generate_latest(registry).decode()
    assert sample(text, "streambed_estimated_roc_auc_ratio", bound="upper") < 0.5
    assert m.snapshot()["performance"]["estimate"]["calibrator"]["slope"] < 0


def test_a_pinned_baseline_catches_drift_the_latest_reference_absorbed() -> None:
    """The latest version's reference already holds the shifted data (slow drift absorbed
    by successive cuts); the pinned baseline still sees it."""
    m, registry = make(estimate_every_seconds=1e9)
    rng = np.random.default_rng(7)
    baseline = champion_reference(rng)
    shifted = batch(rng, 2000, shift=1.0)
    latest = DriftReference.from_columns({"amount": [r.features["amount"] for r in shifted]},
                                         [r.score for r in shifted])
    m.set_reference(latest, model_version="v1", baseline=baseline)
    run(m, rng, 6, shift=1.0)
    text = generate_latest(registry).decode()
    assert sample(text, "streambed_feature_drift_detected", feature="amount") == 1
    assert sample(text, "streambed_prediction_drift_detected") == 1
    stats = m.snapshot()["feature_drift"]["amount"]
    assert stats["statistic"] < stats["threshold"]  # not against the latest reference


def test_a_new_champion_without_its_reference_drops_the_old_score_reference() -> None:
    m, _ = make(estimate_every_seconds=1e9)
    m.set_reference(champion_reference(np.random.default_rng(8)), model_version="v1")
    m.on_model_version("v1", 0.0)
    m.on_model_version("v2", 1.0)
    m.refresh(2.0)
    snap = m.snapshot()
    assert snap["prediction_drift"]["reference_source"] == "first_events"
    assert snap["feature_drift"]["amount"]["reference_source"] == "champion"
