"""Drift as a test: the two-sample chi-square test of homogeneity on binned counts.

Reference counts ``r_i`` (R in all) and current-window counts ``c_i`` (C in all) over the
same bins are two samples; under "no drift" they come from one distribution, and

    X² = Σ_i (r_i·C − c_i·R)² / (R·C·(r_i + c_i))

(Pearson's statistic for the 2×K contingency table) is approximately chi-square with
K − 1 degrees of freedom, K the bins that hold anything (Pearson 1900; Cochran 1954 for
the rule on small expected counts). The threshold is the chi-square quantile at
``1 − alpha``: the probability of a false alarm in one window is ``alpha`` whatever the
reference and window sizes, because the statistic's null distribution already accounts
for both (the two-sample form: a small reference adds its own noise). PSI over the same
bins is close to ``X² · (1/R + 1/C)`` for small differences, so under no drift its mean is
about ``(K − 1)·(1/R + 1/C)`` (0.108 for 10 bins, R = 500, C = 100): PSI against a fixed
0.1 / 0.2 cannot have a stated error rate, its null distribution moves with R and C.

Bins whose expected window count ``C·(r_i + c_i)/N`` is below 5 are pooled into one
(Cochran's rule), so a rare category or an empty tail bin does not make the statistic
explode on one stray event.

The quantile needs the regularised lower incomplete gamma function, computed here by its
series and continued fraction (Press et al., *Numerical Recipes*, 3rd ed., §6.2): numpy
only, no scipy.

>>> round(chi2_quantile(0.99, 9), 3), round(chi2_quantile(0.95, 1), 4)
(21.666, 3.8415)
>>> round(chi2_sf(21.666, 9), 4)
0.01
>>> t = chi_square_test([50, 50], [50, 50], alpha=0.01)
>>> t.statistic, t.df, t.p_value
(0.0, 1, 1.0)
>>> chi_square_test([500, 500], [20, 80], alpha=0.01).detected
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

NAN = float("nan")
#: Cochran's rule: pool bins whose expected window count is below this.
MIN_EXPECTED = 5.0
_EPS = 1e-15
_MAX_ITER = 1000


def _gamma_series(a: float, x: float) -> float:
    """P(a, x) by its power series (converges fast for x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(_MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_fraction(a: float, x: float) -> float:
    """Q(a, x) = 1 − P(a, x) by Lentz's continued fraction (for x >= a + 1)."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_cdf(x: float, df: int) -> float:
    """P(X <= x) for X chi-square with ``df`` degrees of freedom."""
    if x <= 0:
        return 0.0
    a, half = df / 2.0, x / 2.0
    if half < a + 1.0:
        return _gamma_series(a, half)
    return 1.0 - _gamma_fraction(a, half)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x): the p-value of a chi-square statistic (accurate in the far tail too)."""
    if x <= 0:
        return 1.0
    a, half = df / 2.0, x / 2.0
    if half < a + 1.0:
        return 1.0 - _gamma_series(a, half)
    return _gamma_fraction(a, half)


def chi2_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of chi-square(``df``), by bisection on the survival function."""
    if not 0.0 < p < 1.0 or df < 1:
        raise ValueError("need 0 < p < 1 and df >= 1")
    return _quantile_by_bisection(lambda x: chi2_cdf(x, df), p, start=max(1.0, float(df)))


def _quantile_by_bisection(cdf: Callable[[float], float], p: float, start: float) -> float:
    """The ``p`` quantile of a distribution on [0, inf) with the continuous ``cdf``."""
    low, high = 0.0, start
    while cdf(high) < p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if cdf(mid) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-10 * max(1.0, high):
            break
    return (low + high) / 2.0


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (Numerical Recipes §6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (tiny if abs(d) < tiny else d)
    h = d
    for m in range(1, _MAX_ITER):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (tiny if abs(d) < tiny else d)
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (tiny if abs(d) < tiny else d)
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def beta_inc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def f_sf(x: float, d1: float, d2: float) -> float:
    """P(F > x) for F with (d1, d2) degrees of freedom."""
    if x <= 0:
        return 1.0
    return beta_inc(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * x))


def f_quantile(p: float, d1: float, d2: float) -> float:
    """The ``p`` quantile of F(d1, d2), by bisection.

    >>> round(f_quantile(0.95, 5, 10), 3), round(f_quantile(0.99, 9, 27), 3)
    (3.326, 3.149)
    """
    if not 0.0 < p < 1.0:
        raise ValueError("need 0 < p < 1")
    return _quantile_by_bisection(lambda x: 1.0 - f_sf(x, d1, d2), p, start=1.0)


@dataclass(frozen=True)
class ChiSquareTest:
    """One window's test: statistic, threshold at the level asked, verdict."""

    statistic: float
    threshold: float
    df: int
    p_value: float
    alpha: float
    detected: bool


def pooled(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop bins empty on both sides; pool those with expected window count < 5 into one.

    >>> [a.tolist() for a in pooled(np.array([90., 8, 2, 0]), np.array([9., 1, 0, 0]))]
    [[90.0, 10.0], [9.0, 1.0]]
    """
    total = reference + current
    keep = total > 0
    reference, current, total = reference[keep], current[keep], total[keep]
    n = float(total.sum())
    if n <= 0:
        return reference, current
    expected = current.sum() * total / n
    small = expected < MIN_EXPECTED
    if not small.any():
        return reference, current
    big = ~small
    return (np.append(reference[big], reference[small].sum()),
            np.append(current[big], current[small].sum()))


def chi_square_test(
    reference: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    alpha: float,
) -> ChiSquareTest:
    """Two-sample chi-square test of the window's bin counts against the reference's.

    NaN statistic (and no detection) when either side is empty or only one bin is left.
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"bins differ: {len(r)} reference vs {len(c)} current")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    r, c = pooled(r, c)
    big_r, big_c = float(r.sum()), float(c.sum())
    df = len(r) - 1
    if big_r <= 0 or big_c <= 0 or df < 1:
        return ChiSquareTest(NAN, NAN, max(df, 0), NAN, alpha, False)
    statistic = float(np.sum((r * big_c - c * big_r) ** 2 / (r + c)) / (big_r * big_c))
    statistic = round(statistic, 12)
    threshold = chi2_quantile(1.0 - alpha, df)
    return ChiSquareTest(statistic, threshold, df, chi2_sf(statistic, df), alpha,
                         statistic > threshold)


def family_alpha(alpha: float, tests: int) -> float:
    """Per-test level for a family-wise false-alarm rate ``alpha`` over ``tests`` tests
    (Šidák: exact for independent tests, conservative for positively dependent ones).

    >>> round(family_alpha(0.01, 7), 6)
    0.001435
    """
    if tests < 1:
        raise ValueError("tests must be >= 1")
    return 1.0 - (1.0 - alpha) ** (1.0 / tests)
