"""Performance on delayed labels: exact AUC, log loss, accuracy, bounded windows, ADWIN."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitors import PerformanceConfig, PerformanceMonitor, accuracy, log_loss, roc_auc


def brute_force_auc(scores: list[float], labels: list[int]) -> float:
    """P(score of a positive > score of a negative), ties counting one half, over all pairs."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10).map(lambda x: x / 10), st.integers(0, 1)),
                min_size=2, max_size=80))
def test_roc_auc_equals_brute_force_pair_count(pairs: list[tuple[float, int]]) -> None:
    scores = [s for s, _ in pairs]
    labels = [y for _, y in pairs]
    if len(set(labels)) < 2:
        assert math.isnan(roc_auc(scores, labels))
    else:
        assert roc_auc(scores, labels) == pytest.approx(brute_force_auc(scores, labels))


def test_log_loss_and_accuracy_match_hand_computation() -> None:
    assert log_loss([0.9, 0.2, 0.6], [1, 0, 0]) == pytest.approx(
        -(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3
    )
    assert log_loss([1.0], [0]) == pytest.approx(-math.log(1e-15), rel=1e-3)  # clipped
    assert accuracy([1, 0, 0, 1], [1, 1, 0, 1]) == 0.75
    assert math.isnan(log_loss([], [])) and math.isnan(accuracy([], []))


def test_statistics_are_per_model_version_and_nan_below_min_labels() -> None:
    p = PerformanceMonitor(PerformanceConfig(min_labels=4, window_labels=100))
    for score, label in [(0.9, 1), (0.8, 1), (0.3, 0), (0.1, 0)]:
        p.observe(score=score, decision=int(score >= 0.5), label=label, model_version="v1")
    for score, label in [(0.9, 0), (0.2, 1), (0.4, 0)]:
        p.observe(score=score, decision=int(score >= 0.5), label=label, model_version="v2")
    stats = p.statistics()
    assert stats["v1"].roc_auc == 1.0 and stats["v1"].accuracy == 1.0 and stats["v1"].labels == 4
    assert math.isnan(stats["v2"].roc_auc) and stats["v2"].labels == 3


def test_windows_are_bounded_and_old_versions_are_dropped() -> None:
    p = PerformanceMonitor(PerformanceConfig(window_labels=50, max_model_versions=2))
    for i in range(1000):
        p.observe(score=0.5, decision=1, label=i % 2, model_version="v1")
    assert p.statistics()["v1"].labels == 50
    p.observe(score=0.5, decision=1, label=1, model_version="v2")
    p.observe(score=0.5, decision=1, label=1, model_version="v1")  # v1 labelled most recently
    p.observe(score=0.5, decision=1, label=1, model_version="v3")
    assert p.versions == ["v1", "v3"]


def test_adwin_counts_a_jump_in_the_error_rate() -> None:
    p = PerformanceMonitor(PerformanceConfig())
    rng = np.random.default_rng(0)
    for _ in range(2000):
        label = int(rng.random() < 0.5)
        wrong = rng.random() < 0.05
        p.observe(score=0.5, decision=1 - label if wrong else label, label=label,
                  model_version="v1")
    quiet = p.detections
    for _ in range(2000):
        label = int(rng.random() < 0.5)
        wrong = rng.random() < 0.4
        p.observe(score=0.5, decision=1 - label if wrong else label, label=label,
                  model_version="v1")
    assert quiet == 0
    assert p.detections >= 1
    assert p.error_ratio == pytest.approx(0.4, abs=0.1)
