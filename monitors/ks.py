"""Kolmogorov-Smirnov statistic between two binned distributions.

    KS = max_k | E(k) - A(k) |

where ``E`` and ``A`` are the cumulative proportions of the reference and the current
counts over ordered bins. Computed on fine bins (by default 100 reference quantiles) it is
the two-sample KS statistic (Kolmogorov 1933; Smirnov 1948) evaluated only at the bin
edges: a lower bound of the exact statistic, off by at most the largest reference bin
mass (about 1 / ks_bins). When each distinct value has its own bin it is exact.

KS is read as an effect size, the largest gap between the two CDFs (0 = identical,
1 = disjoint), not as a significance test: with thousands of events any gap is
"significant". It needs an ordering, so it is reported only for numeric variables; the
null bin comes first in that order, so a change in the share of nulls shows up too.

>>> ks([50, 50], [25, 75])
0.25
>>> ks([1, 1, 1, 1], [0, 0, 0, 4])
0.75
>>> ks([0, 0], [1, 0])
nan
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monitors.psi import proportions


def ks(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Largest gap between the cumulative proportions; NaN if either side is empty."""
    if len(expected) != len(actual):
        raise ValueError(f"bins differ: {len(expected)} expected vs {len(actual)} actual")
    gap = np.abs(np.cumsum(proportions(expected)) - np.cumsum(proportions(actual)))
    if np.isnan(gap).any():
        return float("nan")
    return float(gap.max())
