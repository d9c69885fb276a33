"""The intervals and paired differences the gates decide on: exact where a reference exists,
and covering at their nominal rate in simulation (fixed seeds)."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.intervals import (
    binomial_upper,
    log_ratio,
    newcombe_difference,
    paired_difference,
    wilson,
    z_of,
)
from governance.paired import (
    auc_difference,
    log_proportion_difference,
    midranks,
    proportion_difference,
)
from governance.quality import roc_auc

#: Replications per coverage check: the coverage estimate's standard error is about
#: sqrt(.05 * .95 / 4000) = 0.0034, so a miss of 0.015 below nominal is over 4 SEs.
REPS = 4000


def coverage(lo: np.ndarray, hi: np.ndarray, truth: float) -> float:
    return float(np.mean((lo <= truth) & (truth <= hi)))


@pytest.mark.parametrize(("p", "n"), [(0.1, 60), (0.5, 40), (0.85, 300)])
def test_wilson_covers_at_its_nominal_rate(p: float, n: int) -> None:
    x = np.random.default_rng(1).binomial(n, p, REPS)
    lo, hi = wilson(x, np.full(REPS, n), 0.025)
    assert coverage(lo, hi, p) >= 0.95 - 0.015


@pytest.mark.parametrize(("p1", "n1", "p2", "n2"),
                         [(0.6, 700, 0.6, 300), (0.3, 140, 0.45, 60), (0.95, 1000, 0.9, 400)])
def test_newcombe_difference_covers_at_its_nominal_rate(p1: float, n1: int, p2: float,
                                                        n2: int) -> None:
    rng = np.random.default_rng(2)
    x1, x2 = rng.binomial(n1, p1, REPS), rng.binomial(n2, p2, REPS)
    lo, hi = newcombe_difference(x1, n1, x2, n2, 0.025)
    assert coverage(lo, hi, p1 - p2) >= 0.95 - 0.015


@pytest.mark.parametrize(("p1", "n1", "p2", "n2"),
                         [(0.6, 700, 0.6, 300), (0.45, 300, 0.64, 700), (0.97, 3000, 0.9, 900)])
def test_log_ratio_covers_at_its_nominal_rate(p1: float, n1: int, p2: float, n2: int) -> None:
    rng = np.random.default_rng(3)
    x1, x2 = rng.binomial(n1, p1, REPS), rng.binomial(n2, p2, REPS)
    lo, hi = log_ratio(x1, n1, x2, n2, 0.025)
    assert coverage(lo, hi, np.log(p1 / p2)) >= 0.95 - 0.015


def test_paired_rate_differences_cover_at_their_nominal_rate() -> None:
    """Two models' decisions on the same 400 people agree 90% of the time."""
    rng = np.random.default_rng(4)
    n, hits, log_hits = 400, 0, 0
    for _ in range(1500):
        a = rng.random(n) < 0.6
        flip = rng.random(n) < 0.1
        b = np.where(flip, rng.random(n) < 0.55, a)
        d, se = proportion_difference(a, b)
        lo, hi = paired_difference(d, se, 0.025)
        hits += lo <= 0.6 - (0.9 * 0.6 + 0.1 * 0.55) <= hi
        d, se = log_proportion_difference(a, b)
        lo, hi = paired_difference(d, se, 0.025)
        log_hits += lo <= np.log(0.6 / (0.9 * 0.6 + 0.1 * 0.55)) <= hi
    assert hits / 1500 >= 0.95 - 0.02 and log_hits / 1500 >= 0.95 - 0.02


def test_delong_paired_auc_difference_covers_at_its_nominal_rate() -> None:
    """Two correlated scores of the same examples, the true AUC difference from a large
    sample: DeLong's interval covers it about 95% of the time."""
    rng = np.random.default_rng(5)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = rng.normal(size=n)
        y = (rng.random(n) < 1 / (1 + np.exp(-1.5 * z + 1))).astype(np.int8)
        return z + rng.normal(scale=0.3, size=n), z + rng.normal(scale=0.8, size=n), y

    a, b, y = draw(400_000)
    truth = roc_auc(a, y) - roc_auc(b, y)
    hits = 0
    for _ in range(600):
        a, b, y = draw(600)
        d, se = auc_difference(a, b, y)
        lo, hi = paired_difference(d, se, 0.025)
        hits += lo <= truth <= hi
    assert hits / 600 >= 0.95 - 0.03


def test_auc_difference_matches_a_brute_force_count() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 60)
    a, b = rng.integers(0, 5, 60) / 4, rng.random(60)     # ties in a on purpose

    def brute(s: np.ndarray) -> float:
        pos, neg = s[y == 1], s[y == 0]
        return float(np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg]))

    d, se = auc_difference(a, b, y)
    assert d == pytest.approx(brute(a) - brute(b)) and se > 0
    assert auc_difference(a, a, y)[1] == 0.0


@given(st.lists(st.integers(0, 5), min_size=1, max_size=30))
def test_midranks_are_the_mean_rank_of_ties(values: list[int]) -> None:
    x = np.array(values, dtype=float)
    ranks = midranks(x)
    for v in set(values):
        places = [i + 1 for i, w in enumerate(sorted(values)) if w == v]
        assert np.all(ranks[x == v] == np.mean(places))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_binomial_upper_is_the_exact_clopper_pearson_bound(kn: tuple[int, int]) -> None:
    k, n = kn
    upper = binomial_upper(k, n, 0.05)
    if k == n:
        assert upper == 1.0
        return

    def cdf(p: float) -> float:
        return sum(comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))

    assert cdf(upper) == pytest.approx(0.05, abs=1e-6)
    assert k / n <= upper


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.001, 0.01, 0.025, 0.1]))
def test_wilson_holds_the_estimate_inside_zero_one(kn: tuple[int, int], alpha: float) -> None:
    x, n = kn
    lo, hi = wilson(x, n, alpha)
    assert 0 <= lo <= x / n <= hi <= 1


def test_smaller_alpha_gives_wider_intervals() -> None:
    assert z_of(0.001) > z_of(0.01) > z_of(0.05)
    narrow, wide = log_ratio(300, 500, 200, 400, 0.05), log_ratio(300, 500, 200, 400, 0.001)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
