"""Closed-form confidence intervals for proportions, their differences and their ratios.

Every function takes counts and a one-sided error ``alpha`` per end: the interval misses
the truth below with probability about ``alpha`` and above with about ``alpha`` (coverage
``1 - 2 * alpha``). Closed forms, no resampling: a verdict replays bit for bit and costs
microseconds.

- :func:`wilson`: the score interval of one proportion (Wilson, 1927), good coverage down
  to small counts, never outside [0, 1].
- :func:`newcombe_difference`: ``p1 - p2`` for two independent samples, Newcombe's hybrid
  score interval (method 10 of Newcombe, 1998), which is MOVER (Zou and Donner, 2008)
  applied to the two Wilson intervals.
- :func:`log_ratio`: ``log(p1 / p2)`` for two independent samples: MOVER applied to the
  logarithms of the two Wilson intervals (a monotone transform keeps each interval valid;
  MOVER combines them for the difference of logs).
- :func:`paired_difference`: ``a - b`` for two statistics measured on the same examples,
  from their estimates and standard errors (Wald); see :mod:`governance.paired`.
- :func:`binomial_upper`: the exact (Clopper-Pearson) one-sided upper bound of a rate from
  ``k`` events in ``n`` trials, used to state the operating characteristics.

Arrays broadcast, so a gate computes every group pair at once.

>>> lo, hi = wilson(30, 100, 0.025)
>>> round(float(lo), 4), round(float(hi), 4)
(0.2189, 0.3958)
>>> lo, hi = newcombe_difference(56, 70, 48, 80, 0.025)   # Newcombe (1998), example (a)
>>> round(float(lo), 4), round(float(hi), 4)
(0.0524, 0.3339)
>>> lo, hi = log_ratio(60, 100, 60, 100, 0.025)
>>> bool(lo < 0 < hi), round(float(-lo), 3) == round(float(hi), 3)
(True, True)
>>> round(binomial_upper(0, 200, 0.05), 4), round(binomial_upper(3, 200, 0.05), 4)
(0.0149, 0.0383)
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def z_of(alpha: float) -> float:
    """The standard normal quantile above which lies ``alpha``.

    >>> round(z_of(0.025), 4), round(z_of(0.01), 4)
    (1.96, 2.3263)
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return _NORMAL.inv_cdf(1 - alpha)


def wilson(successes: np.ndarray | int, trials: np.ndarray | int,
           alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``successes / trials`` (empty trials give [0, 1])."""
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = z_of(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / np.where(n > 0, n, 1), 0.5)
        denom = 1 + z * z / np.where(n > 0, n, 1)
        centre = (p + z * z / (2 * np.where(n > 0, n, 1))) / denom
        half = z * np.sqrt(p * (1 - p) / np.where(n > 0, n, 1)
                           + z * z / (4 * np.where(n > 0, n, 1) ** 2)) / denom
    lo = np.where(n > 0, np.clip(centre - half, 0, 1), 0.0)
    hi = np.where(n > 0, np.clip(centre + half, 0, 1), 1.0)
    # at the extremes the Wilson limit is exactly 0 or 1 (rounding aside)
    lo = np.where(x <= 0, 0.0, lo)
    hi = np.where(x >= n, 1.0, hi)
    return lo, hi


def newcombe_difference(x1: np.ndarray | int, n1: np.ndarray | int, x2: np.ndarray | int,
                        n2: np.ndarray | int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval for ``x1/n1 - x2/n2`` (independent samples, both ``n > 0``)."""
    p1 = np.asarray(x1, dtype=np.float64) / np.asarray(n1, dtype=np.float64)
    p2 = np.asarray(x2, dtype=np.float64) / np.asarray(n2, dtype=np.float64)
    l1, u1 = wilson(x1, n1, alpha)
    l2, u2 = wilson(x2, n2, alpha)
    d = p1 - p2
    return (d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def log_ratio(x1: np.ndarray | int, n1: np.ndarray | int, x2: np.ndarray | int,
              n2: np.ndarray | int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Interval for ``log((x1/n1) / (x2/n2))`` (independent samples, ``0 < x <= n``)."""
    with np.errstate(divide="ignore"):
        p1 = np.log(np.asarray(x1, dtype=np.float64) / np.asarray(n1, dtype=np.float64))
        p2 = np.log(np.asarray(x2, dtype=np.float64) / np.asarray(n2, dtype=np.float64))
        l1, u1 = (np.log(v) for v in wilson(x1, n1, alpha))
        l2, u2 = (np.log(v) for v in wilson(x2, n2, alpha))
    d = p1 - p2
    return (d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def paired_difference(estimate: np.ndarray | float, standard_error: np.ndarray | float,
                      alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Wald interval ``estimate -+ z * standard_error``.

    >>> lo, hi = paired_difference(0.02, 0.01, 0.025)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.0004, 0.0396)
    """
    z = z_of(alpha)
    e = np.asarray(estimate, dtype=np.float64)
    s = np.asarray(standard_error, dtype=np.float64)
    return e - z * s, e + z * s


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
             + i * lp + (n - i) * lq for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def binomial_upper(k: int, n: int, alpha: float) -> float:
    """Exact one-sided upper confidence bound (Clopper-Pearson) of a rate seen ``k`` times
    in ``n``: the largest ``p`` with ``P(X <= k) >= alpha``, found by bisection."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if k == n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _binomial_cdf(k, n, mid) >= alpha:
            lo = mid
        else:
            hi = mid
    return lo
