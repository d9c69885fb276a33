"""Population Stability Index between two binned distributions.

    PSI = Σ_i (a_i - e_i) · ln(a_i / e_i)

where ``e_i`` and ``a_i`` are the proportions of the expected (reference) and actual
(current) counts in bin ``i``. It is the symmetrised Kullback-Leibler divergence
(Jeffreys divergence) of the two binned distributions. Common practice in credit scoring
(Siddiqi 2006, *Credit Risk Scorecards*, Wiley; Yurdakul 2018, "Statistical properties of
the population stability index") reads PSI < 0.1 as stable, 0.1-0.2 as a moderate shift
worth a look, and > 0.2 as a significant shift.

Empty bins: a proportion of 0 would make ``ln`` infinite, so proportions are floored at
``epsilon`` (default 1e-4, i.e. one in ten thousand) before the sum. A bin empty on both
sides then contributes exactly 0; a bin empty on one side contributes a large but finite
amount. Proportions are not renormalised after flooring.

>>> round(psi([50, 50], [25, 75]), 5)
0.27465
>>> psi([10, 20, 30], [1, 2, 3])                     # same proportions
0.0
>>> round(psi([100, 0], [99, 1]), 4)                 # an empty reference bin, floored
0.0457
>>> psi([0, 0], [1, 1])                              # no reference: undefined
nan
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Floor for empty-bin proportions (see the module docstring).
DEFAULT_EPSILON = 1e-4


def proportions(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Counts divided by their total (NaN everywhere when the total is 0)."""
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum()
    if total <= 0:
        return np.full(array.shape, np.nan)
    return array / total


def psi(
    expected: Sequence[float] | np.ndarray,
    actual: Sequence[float] | np.ndarray,
    epsilon: float = DEFAULT_EPSILON,
) -> float:
    """PSI of ``actual`` against ``expected`` counts over the same bins; NaN if either is empty."""
    if len(expected) != len(actual):
        raise ValueError(f"bins differ: {len(expected)} expected vs {len(actual)} actual")
    e = proportions(expected)
    a = proportions(actual)
    if np.isnan(e).any() or np.isnan(a).any():
        return float("nan")
    e = np.maximum(e, epsilon)
    a = np.maximum(a, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))
