"""PSI and binned KS against hand-computed values and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitors import ks, psi


def brute_force_ks(xs: list[float], ys: list[float]) -> float:
    """Two-sample KS: the largest gap of the empirical CDFs over every observed point."""
    points = sorted(set(xs) | set(ys))
    return max(
        abs(sum(x <= p for x in xs) / len(xs) - sum(y <= p for y in ys) / len(ys))
        for p in points
    )


def test_psi_matches_hand_computation_for_two_bins() -> None:
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi([50, 50], [25, 75]) == pytest.approx(expected)
    assert psi([50, 50], [25, 75]) == pytest.approx(0.274653, abs=1e-6)


def test_psi_matches_hand_computation_for_ten_bins() -> None:
    reference = [10] * 10
    current = [5, 5, 5, 5, 10, 10, 15, 15, 15, 15]
    by_hand = sum(
        (c / 100 - 0.1) * math.log((c / 100) / 0.1) for c in current
    )
    assert psi(reference, current) == pytest.approx(by_hand)


def test_psi_floors_empty_bins_at_epsilon() -> None:
    by_hand = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert psi([5, 5], [0, 10]) == pytest.approx(by_hand)
    assert psi([5, 5, 0], [5, 5, 0]) == 0.0  # a bin empty on both sides adds nothing
    assert psi([5, 5], [0, 10], epsilon=1e-3) < psi([5, 5], [0, 10])


def test_psi_and_ks_are_nan_without_data_and_reject_mismatched_bins() -> None:
    assert math.isnan(psi([0, 0], [1, 2]))
    assert math.isnan(ks([1, 2], [0, 0]))
    with pytest.raises(ValueError, match="bins differ"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="bins differ"):
        ks([1, 2], [1])


def test_ks_matches_hand_computation() -> None:
    assert ks([50, 50], [25, 75]) == 0.25
    assert ks([1, 1, 1, 1], [0, 0, 0, 4]) == 0.75
    assert ks([3, 0, 0], [0, 0, 3]) == 1.0


counts = st.lists(st.integers(0, 50), min_size=2, max_size=12)


@settings(max_examples=200, deadline=None)
@given(counts, counts)
def test_psi_is_non_negative_and_symmetric(a: list[int], b: list[int]) -> None:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    if sum(a) == 0 or sum(b) == 0:
        return
    assert psi(a, b) >= -1e-12
    assert psi(a, b) == pytest.approx(psi(b, a))
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)


values = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(values, values)
def test_binned_ks_equals_exact_ks_when_every_value_has_its_own_bin(
    xs: list[float], ys: list[float]
) -> None:
    support = np.arange(-5.0, 6.0)
    ref = [xs.count(v) for v in support]
    cur = [ys.count(v) for v in support]
    assert ks(ref, cur) == pytest.approx(brute_force_ks(xs, ys))
