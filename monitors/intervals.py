"""Confidence intervals and calibration for backtests: how sure a rate or an AUC is.

- :func:`wilson`: the Wilson score interval of a proportion (Wilson 1927; recommended over
  the normal "Wald" interval by Brown, Cai & DasGupta 2001, "Interval estimation for a
  binomial proportion"): well behaved near 0 and 1 and for small counts.
- :func:`auc_interval`: ROC AUC ± z·SE with the standard error of Hanley & McNeil (1982,
  "The meaning and use of the area under a ROC curve", Radiology 143), clipped to [0, 1].
- :func:`percentile_interval`: the percentile bootstrap interval (Efron & Tibshirani 1993)
  of statistics that have no closed form here (log loss, calibration error, the parity
  ratio, the equalized odds difference); resamples where the statistic is undefined are
  left out, and the interval is undefined when more than half are.
- :func:`calibration_error`: the expected calibration error over equal-width score bins
  (Naeini, Cooper & Hauskrecht 2015): the mean |observed rate - mean score| per bin,
  weighted by the bin's share of examples. 0 is perfectly calibrated.

All levels are 95% (z = 1.959964).

>>> [round(v, 4) for v in wilson(8, 10)]
[0.4902, 0.9433]
>>> wilson(0, 0)
(nan, nan)
>>> [round(v, 4) for v in auc_interval(0.8, positives=50, negatives=50)]
[0.7128, 0.8872]
>>> calibration_error([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 1])   # each bin: 0.1 off
0.1
>>> percentile_interval([float("nan")] * 3 + [0.5])
(nan, nan)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z_95 = 1.959963984540054
NAN = float("nan")


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of ``successes / trials``; NaN when there are no trials."""
    if trials <= 0:
        return NAN, NAN
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def auc_interval(auc: float, *, positives: int, negatives: int,
                 z: float = Z_95) -> tuple[float, float]:
    """Hanley & McNeil (1982) interval of an ROC AUC; NaN when it is undefined."""
    if math.isnan(auc) or positives <= 0 or negatives <= 0:
        return NAN, NAN
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
                + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    se = math.sqrt(max(variance, 0.0))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def percentile_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap replicates (NaN ones left out)."""
    array = np.asarray(values, dtype=np.float64)
    kept = array[~np.isnan(array)]
    if len(kept) == 0 or len(kept) * 2 < len(array):
        return NAN, NAN
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(kept, [tail, 100 - tail])
    return float(low), float(high)


def calibration_error(scores: Sequence[float], labels: Sequence[int], bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width score bins; NaN if empty."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if len(s) == 0:
        return NAN
    index = np.minimum((s * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    gap = np.abs(np.bincount(index, weights=y, minlength=bins)
                 - np.bincount(index, weights=s, minlength=bins))
    return float(round(gap.sum() / counts.sum(), 15))
