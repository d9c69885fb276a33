"""The drift test's stated error rate, measured: false alarms over many windows, power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitors import DriftConfig
from monitors.bins import Binning
from monitors.chisquare import chi2_cdf, chi2_quantile, chi_square_test, family_alpha
from monitors.drift import VariableDrift, dispersion, drift_verdict
from monitors.intervals import wilson
from monitors.sketch import VariableSketch

#: Two-sided 99.9% normal quantile: a measured rate fails only when clearly off.
Z_999 = 3.2905


@pytest.mark.parametrize(("p", "df", "expected"), [
    (0.95, 1, 3.841459), (0.99, 9, 21.665994), (0.999, 10, 29.588298), (0.5, 2, 1.386294),
    (0.99, 100, 135.806723), (0.01, 5, 0.554298),
])
def test_chi2_quantile_matches_published_tables(p: float, df: int, expected: float) -> None:
    assert chi2_quantile(p, df) == pytest.approx(expected, rel=1e-5)
    assert chi2_cdf(expected, df) == pytest.approx(p, abs=1e-6)


def test_chi2_quantile_matches_simulated_chi_square() -> None:
    rng = np.random.default_rng(3)
    draws = rng.chisquare(9, size=200_000)
    assert np.mean(draws > chi2_quantile(0.99, 9)) == pytest.approx(0.01, abs=0.0015)


def _binning(reference: np.ndarray, bins: int = 10) -> Binning:
    return Binning.from_sketch(VariableSketch.from_values(reference.tolist(), 10 * bins), bins)


@pytest.mark.parametrize(("reference_size", "window_size"), [(500, 100), (2000, 2000),
                                                             (500, 5000)])
def test_false_alarm_rate_per_window_is_at_most_the_stated_rate(
        reference_size: int, window_size: int) -> None:
    """i.i.d. data, a new reference each time: the rate over 1,500 windows is the level
    (not above it at 99.9% confidence, and not far below: a test that never alarms fails)."""
    rng = np.random.default_rng(reference_size + window_size)
    config = DriftConfig(min_effect_psi=0.0)
    alarms = 0
    trials = 1500
    for _ in range(trials):
        binning = _binning(rng.normal(size=reference_size))
        counts = binning.counts(rng.normal(size=window_size).tolist())
        alarms += drift_verdict(binning, counts, 0.01, config).detected
    low, high = wilson(alarms, trials, z=Z_999)
    assert low <= 0.01 and high >= 0.005, f"{alarms} alarms in {trials} windows"


def test_a_half_sd_shift_is_detected_in_almost_every_window() -> None:
    rng = np.random.default_rng(5)
    config = DriftConfig()
    hits = 0
    for _ in range(200):
        binning = _binning(rng.normal(size=2000))
        counts = binning.counts(rng.normal(0.5, 1.0, size=500).tolist())
        hits += drift_verdict(binning, counts, 0.01, config).detected
    assert hits >= 195


def test_huge_windows_do_not_flag_a_trivial_shift() -> None:
    """0.05 sd over 200,000 events is 'significant' but below the minimum effect."""
    rng = np.random.default_rng(6)
    binning = _binning(rng.normal(size=200_000))
    counts = binning.counts(rng.normal(0.05, 1.0, size=200_000).tolist())
    verdict = drift_verdict(binning, counts, 0.01, DriftConfig())
    assert verdict.statistic > verdict.threshold and not verdict.detected
    assert verdict.psi < DriftConfig().min_effect_psi


def test_no_verdict_below_the_minimum_window() -> None:
    binning = _binning(np.arange(1000.0))
    verdict = drift_verdict(binning, binning.counts([5000.0] * 99), 0.01, DriftConfig())
    assert math.isnan(verdict.statistic) and not verdict.detected


def test_family_wise_rate_over_many_statistics_holds() -> None:
    """Seven independent features, each at the Šidák level: any alarm in <= 1% of windows."""
    rng = np.random.default_rng(8)
    config = DriftConfig(min_effect_psi=0.0)
    per_test = family_alpha(0.01, 7)
    binnings = [_binning(rng.normal(size=5000)) for _ in range(7)]
    windows_with_alarm = 0
    trials = 1000
    for _ in range(trials):
        windows_with_alarm += any(
            drift_verdict(b, b.counts(rng.normal(size=1000).tolist()), per_test, config).detected
            for b in binnings
        )
    low, _ = wilson(windows_with_alarm, trials, z=Z_999)
    assert low <= 0.01, f"{windows_with_alarm} of {trials} windows alarmed"


def test_correlated_counts_are_corrected_by_the_estimated_dispersion() -> None:
    """Each value repeated 4 times (an entity's window feature): the plain test alarms
    far above its level; corrected by a dispersion estimated afresh from 9 pairs of
    preceding windows each time (so the estimate's own noise counts), it does not."""
    rng = np.random.default_rng(9)
    config = DriftConfig(min_effect_psi=0.0)
    binning = _binning(rng.normal(size=20_000))

    def window() -> np.ndarray:
        return binning.counts(np.repeat(rng.normal(size=250), 4).tolist())

    plain = corrected = 0
    trials = 600
    phis = []
    for _ in range(trials):
        spread = dispersion(binning, [window() for _ in range(10)], config)
        phis.append(spread.phi)
        counts = window()
        plain += drift_verdict(binning, counts, 0.01, config).detected
        corrected += drift_verdict(binning, counts, 0.01, config, spread).detected
    assert 3.0 < float(np.median(phis)) < 5.0  # about 4: each value counted 4 times
    assert plain > 0.1 * trials
    low, high = wilson(corrected, trials, z=Z_999)
    assert low <= 0.01 and high >= 0.002, f"{corrected} of {trials}"


def test_variable_drift_judges_each_disjoint_window_once_after_the_dispersion_is_known() -> None:
    rng = np.random.default_rng(10)
    config = DriftConfig(window_seconds=10, min_window_events=50)
    drift = VariableDrift(config)
    drift.set_sketch(VariableSketch.from_values(rng.normal(size=2000).tolist()))
    verdicts = []
    for w in range(8):
        loc = 1.0 if w >= 6 else 0.0
        drift.observe_many(rng.normal(loc, 1.0, size=300).tolist(), now=10.0 * w + 1)
        verdicts.append(drift.verdict(now=10.0 * (w + 1)))
    judged = [not math.isnan(v.statistic) for v in verdicts]
    assert judged == [False, False, False, True, True, True, True, True]
    assert [v.detected for v in verdicts[3:]] == [False, False, False, True, True]
    assert drift.statistics(now=75.0).detected  # holds until the next window completes
    assert drift.reference_source == "champion"


def test_chi_square_pools_sparse_bins() -> None:
    test = chi_square_test([1000, 1000, 1, 1], [100, 100, 0, 3], 0.01)
    assert test.df == 2


counts = st.lists(st.integers(0, 500), min_size=2, max_size=12)


@settings(max_examples=200, deadline=None)
@given(counts, st.integers(1, 20))
def test_chi_square_is_zero_for_proportional_counts_and_never_negative(
        reference: list[int], factor: int) -> None:
    same = chi_square_test(reference, [c * factor for c in reference], 0.01)
    assert math.isnan(same.statistic) or same.statistic == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(counts, counts)
def test_chi_square_statistic_and_threshold_are_well_formed(a: list[int], b: list[int]) -> None:
    n = min(len(a), len(b))
    test = chi_square_test(a[:n], b[:n], 0.01)
    if not math.isnan(test.statistic):
        assert test.statistic >= 0 and test.df >= 1
        assert test.detected == (test.statistic > test.threshold)
        assert 0.0 <= test.p_value <= 1.0
