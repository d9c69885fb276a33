"""Drift of one variable: reference from first events or a file, sliding window, NaN rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitors import DriftConfig, ReferenceSample, VariableDrift, ks, psi


def config(**overrides: object) -> DriftConfig:
    base: dict[str, object] = {
        "reference": {"events": 100},
        "window_seconds": 100,
        "window_buckets": 10,
        "bins": 10,
        "ks_bins": 100,
        "min_window_events": 50,
    }
    base.update(overrides)
    return DriftConfig.model_validate(base)


def feed(drift: VariableDrift, values: list[float], start: float = 0.0, step: float = 0.1) -> float:
    now = start
    for v in values:
        drift.observe(v, now)
        now += step
    return now


def test_first_events_become_the_reference_then_fill_the_window() -> None:
    d = VariableDrift(config())
    rng = np.random.default_rng(0)
    reference = rng.normal(size=100).tolist()
    now = feed(d, reference)
    stats = d.statistics(now)
    assert stats.reference_events == 100 and stats.window_events == 0
    assert math.isnan(stats.psi) and stats.status == "pending"
    current = rng.normal(size=300).tolist()
    now = feed(d, current, start=now)
    stats = d.statistics(now)
    assert stats.window_events == 300
    b = d.binning
    assert b is not None
    expected_counts = b.reference_counts
    current_counts = np.bincount([b.index(v) for v in current], minlength=b.n_bins)
    assert stats.psi == pytest.approx(psi(b.coarse(expected_counts), b.coarse(current_counts)))
    assert stats.ks == pytest.approx(ks(expected_counts, current_counts))
    assert stats.psi < 0.2 and stats.status in {"ok", "warn"}


def test_a_shifted_distribution_is_flagged_and_then_forgotten_as_the_window_slides() -> None:
    d = VariableDrift(config())
    rng = np.random.default_rng(1)
    now = feed(d, rng.normal(size=100).tolist())
    now = feed(d, rng.normal(loc=2.0, size=200).tolist(), start=now)
    shifted = d.statistics(now)
    assert shifted.psi > 0.2 and shifted.ks > 0.5 and shifted.status == "alert"
    now = feed(d, rng.normal(size=1200).tolist(), start=now)  # 120 s of normal data
    assert d.statistics(now).psi < 0.2


def test_below_min_window_events_statistics_are_nan() -> None:
    d = VariableDrift(config(min_window_events=50))
    now = feed(d, list(range(100)))
    now = feed(d, [1000.0] * 49, start=now)
    assert math.isnan(d.statistics(now).psi) and math.isnan(d.statistics(now).ks)
    d.observe(1000.0, now)
    assert d.statistics(now).psi > 1


def test_nulls_show_up_as_drift() -> None:
    d = VariableDrift(config())
    now = feed(d, [float(i) for i in range(100)])
    now = feed(d, [None] * 30 + [float(i) for i in range(70)], start=now)
    s = d.statistics(now)
    assert s.ks == pytest.approx(0.3)
    assert s.psi > 0.2


def test_categorical_drift_has_psi_but_no_ks() -> None:
    d = VariableDrift(config())
    now = feed(d, ["web"] * 50 + ["branch"] * 50)
    now = feed(d, ["web"] * 90 + ["kiosk"] * 10, start=now)
    s = d.statistics(now)
    assert s.kind == "categorical" and math.isnan(s.ks)
    by_hand = (0.9 - 0.5) * math.log(0.9 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (
        0.1 - 1e-4
    ) * math.log(0.1 / 1e-4)
    assert s.psi == pytest.approx(by_hand)


def test_reset_rebuilds_a_first_events_reference_but_keeps_a_file_reference() -> None:
    collected = VariableDrift(config())
    feed(collected, list(range(100)))
    collected.reset()
    assert collected.binning is None and collected.statistics(0).reference_events == 0
    fixed = VariableDrift(config(), ReferenceSample.from_values(list(range(100))))
    fixed.reset()
    assert fixed.binning is not None and fixed.reference_source == "file"


def test_memory_does_not_grow_with_events() -> None:
    d = VariableDrift(config())
    now = feed(d, list(range(100)))
    assert d.window is not None
    size = d.window.nbytes
    feed(d, np.random.default_rng(3).normal(size=20_000).tolist(), start=now)
    assert d.window.nbytes == size and d._pending == []
