"""The Monitoring façade end to end: events and labels in, /metrics text and snapshot out."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitors import Metrics, Monitoring, MonitorsConfig, write_reference

FEATURES = ["amount", "channel"]


def make(**config: object) -> tuple[Monitoring, CollectorRegistry]:
    base: dict[str, object] = {
        "sensitive_attributes": {"group": ["A", "B"]},
        "drift": {"reference": {"events": 200}, "window_seconds": 100, "window_buckets": 10,
                  "min_window_events": 50},
        "impact": {"window_seconds": 100, "window_buckets": 10, "min_group_size": 30},
        "performance": {"min_labels": 30},
    }
    base.update(config)
    registry = CollectorRegistry()
    return Monitoring(MonitorsConfig.model_validate(base), FEATURES, Metrics(registry)), registry


def test_by_default_a_new_model_version_keeps_the_reference() -> None:
    m, registry = make()
    rng = np.random.default_rng(2)
    now = run_traffic(m, rng, n=600, start=0.0, shift=0.0, version="v1")
    m.on_model_version("v2", now)
    m.refresh(now)
    text = generate_latest(registry).decode()
    assert sample(text, "streambed_feature_drift_reference_events", feature="amount") == 200


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in exposition text (labels in any order)."""
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if found == labels:
            return float(m.group(3))
    raise AssertionError(f"no sample {name}{labels}")


def run_traffic(m: Monitoring, rng: np.random.Generator, *, n: int, start: float, shift: float,
                version: str = "v1", bias_b: bool = False) -> float:
    now = start
    for _ in range(n):
        group = "A" if rng.random() < 0.5 else "B"
        amount = float(rng.normal(loc=shift))
        score = float(1 / (1 + np.exp(-amount)))
        if bias_b and group == "B":
            score *= 0.3
        decision = int(score >= 0.5)
        m.on_scored(features={"amount": amount, "channel": "web"}, score=score,
                    decision=decision, groups={"group": group}, model_version=version, now=now)
        label = int(rng.random() < score)
        m.on_label(score=score, decision=decision, label=label, groups={"group": group},
                   model_version=version, now=now)
        now += 0.1
    return now


def test_every_series_exists_from_the_start_as_nan() -> None:
    _, registry = make()
    text = generate_latest(registry).decode()
    assert math.isnan(sample(text, "streambed_feature_drift_psi", feature="amount"))
    assert math.isnan(sample(text, "streambed_prediction_drift_psi"))
    assert math.isnan(sample(text, "streambed_demographic_parity_ratio", attribute="group"))
    assert math.isnan(sample(text, "streambed_group_selection_rate_ratio",
                             attribute="group", group="other"))
    assert sample(text, "streambed_group_decisions_total",
                  attribute="group", group="unknown", decision="1") == 0
    assert sample(text, "streambed_group_outcomes_total",
                  attribute="group", group="B", outcome="fn") == 0
    assert sample(text, "streambed_performance_drift_detections_total") == 0


def test_stable_traffic_gives_low_drift_and_counts_everything() -> None:
    m, registry = make()
    rng = np.random.default_rng(0)
    now = run_traffic(m, rng, n=1000, start=0.0, shift=0.0)
    m.refresh(now)
    text = generate_latest(registry).decode()
    assert sample(text, "streambed_feature_drift_psi", feature="amount") < 0.1
    assert sample(text, "streambed_feature_drift_ks", feature="amount") < 0.1
    assert sample(text, "streambed_feature_drift_psi", feature="channel") == 0.0
    assert math.isnan(sample(text, "streambed_feature_drift_ks", feature="channel"))
    assert sample(text, "streambed_prediction_drift_psi") < 0.1
    assert sample(text, "streambed_feature_drift_reference_events", feature="amount") == 200
    assert sample(text, "streambed_feature_drift_window_events", feature="amount") == 800
    decided = sum(
        sample(text, "streambed_group_decisions_total", attribute="group", group=g, decision=d)
        for g in ("A", "B") for d in ("0", "1")
    )
    assert decided == 1000
    assert 0.7 < sample(text, "streambed_model_roc_auc_ratio", model_version="v1") < 0.9
    assert sample(text, "streambed_model_window_labels", model_version="v1") == 1000
    assert sample(text, "streambed_demographic_parity_ratio", attribute="group") > 0.8
    assert sample(text, "streambed_monitoring_last_refresh_timestamp_seconds") == now


def test_shifted_features_and_biased_decisions_show_in_metrics_and_snapshot() -> None:
    m, registry = make()
    rng = np.random.default_rng(1)
    now = run_traffic(m, rng, n=200, start=0.0, shift=0.0)       # the reference
    now = run_traffic(m, rng, n=600, start=now, shift=1.5, bias_b=True)
    m.refresh(now)
    text = generate_latest(registry).decode()
    assert sample(text, "streambed_feature_drift_psi", feature="amount") > 0.2
    assert sample(text, "streambed_prediction_drift_psi") > 0.2
    assert sample(text, "streambed_demographic_parity_ratio", attribute="group") < 0.8
    snap = m.snapshot()
    json.dumps(snap, allow_nan=False)  # plain JSON: NaN became None
    assert snap["feature_drift"]["amount"]["status"] == "alert"
    assert snap["feature_drift"]["channel"]["ks"] is None
    assert snap["impact"]["group"]["status"] == "alert"
    assert snap["impact"]["group"]["groups"]["unknown"]["selection_rate"] is None
    assert snap["model_version"] == "v1"
    assert set(snap["performance"]["versions"]) == {"v1"}


def test_a_new_champion_rebuilds_the_prediction_reference_not_the_feature_references(
) -> None:
    m, registry = make(drift={"reference": {"events": 200, "reset_on_model_version": True},
                              "window_seconds": 100, "window_buckets": 10,
                              "min_window_events": 50})
    rng = np.random.default_rng(2)
    now = run_traffic(m, rng, n=600, start=0.0, shift=0.0, version="v1")
    m.on_model_version("v2", now)
    m.refresh(now)
    text = generate_latest(registry).decode()
    assert sample(text, "streambed_prediction_drift_reference_events") == 0
    assert sample(text, "streambed_feature_drift_reference_events", feature="amount") == 200, \
        "features do not depend on the model: their reference stays"
    now = run_traffic(m, rng, n=300, start=now, shift=1.0, version="v2")
    m.refresh(now)
    text = generate_latest(registry).decode()
    assert sample(text, "streambed_prediction_drift_reference_events") == 200
    assert sample(text, "streambed_prediction_drift_window_events") == 100
    assert sample(text, "streambed_model_window_labels", model_version="v2") == 300
    assert sample(text, "streambed_model_window_labels", model_version="v1") == 600


def test_evicted_model_versions_disappear_from_metrics() -> None:
    m, registry = make(performance={"max_model_versions": 2})
    for i, version in enumerate(["v1", "v2", "v3"]):
        m.on_label(score=0.5, decision=1, label=1, groups={}, model_version=version, now=i)
    m.refresh(3.0)
    text = generate_latest(registry).decode()
    assert 'model_version="v1"' not in text
    assert 'streambed_model_window_labels{model_version="v3"} 1.0' in text


def test_unlisted_and_missing_group_values_are_other_and_unknown() -> None:
    m, registry = make()
    for value in ("A", "Z", None):
        m.on_scored(features={}, score=0.9, decision=1, groups={"group": value},
                    model_version="v1", now=0.0)
    m.on_scored(features={}, score=0.9, decision=0, groups={}, model_version="v1", now=0.0)
    text = generate_latest(registry).decode()
    for group, decision in [("A", "1"), ("other", "1"), ("unknown", "1"), ("unknown", "0")]:
        assert sample(text, "streambed_group_decisions_total",
                      attribute="group", group=group, decision=decision) == 1


def test_a_reference_file_is_used_and_survives_model_versions(tmp_path: Path) -> None:
    path = tmp_path / "reference.json"
    rng = np.random.default_rng(3)
    write_reference(path, {"amount": rng.normal(size=5000).tolist(), "channel": ["web"] * 5000},
                    scores=rng.uniform(size=5000).tolist())
    m, registry = make(drift={"reference": {"source": "file", "path": str(path)},
                              "min_window_events": 50})
    now = run_traffic(m, rng, n=300, start=0.0, shift=0.0, version="v1")
    m.on_model_version("v2", now)
    m.refresh(now)
    text = generate_latest(registry).decode()
    assert sample(text, "streambed_feature_drift_reference_events", feature="amount") == 5000
    assert sample(text, "streambed_feature_drift_window_events", feature="amount") == 300
    assert sample(text, "streambed_feature_drift_psi", feature="amount") < 0.1
    assert m.snapshot()["feature_drift"]["amount"]["reference_source"] == "file"


def test_a_reference_file_missing_features_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reference.json"
    write_reference(path, {"amount": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"lacks features \['channel'\]"):
        make(drift={"reference": {"source": "file", "path": str(path)}})


def test_snapshot_before_any_refresh_is_plain_data() -> None:
    m, _ = make()
    assert m.snapshot() == {"refreshed_at": None}
