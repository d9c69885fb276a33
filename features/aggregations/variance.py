"""``variance`` and ``stddev``: population statistics (divide by n), null below 2 values.

Welford's update (Welford 1962, Knuth TAOCP vol. 2 §4.2.2) is stable when values only
arrive, but drifts when a sliding window reverts them. Instead the state is the shifted
moment sums ``S1 = sum(y)``, ``S2 = sum(y*y)`` with ``y = x - K`` (``K`` the first value
seen; Chan, Golub & LeVeque 1983, "shifted data") held as double-double accumulators of
values added and values reverted, and ``M2 = S2 - S1**2 / n`` is evaluated in
double-double (:func:`features.ddmath.central_m2`). The offline replay evaluates the same
formulas on prefix sums, so both engines give the same bits. ``merge`` re-shifts the
other state's sums to this ``K`` (the pairwise update of Chan, Golub & LeVeque 1979).
The squares must stay finite: beyond about ``|x - K| > 1e150`` the sums overflow and the
value is null (never inf or NaN) until the window empties and the sums restart.

Precision: the sums keep about 100 bits of the largest shifted square they have held, so
after values leave a sliding window the variance of what remains is within about
``n * 2**-100 * max(x - K)**2`` of the exact value (``n`` values added since the window
last emptied), and the standard deviation within the square root of that. A value 1e12
away from the rest leaves an absolute error near 1e-8 in the variance (1e-4 in the
stddev) until the window empties; values of similar size are exact to the last bits.

Examples
--------
>>> from features.windows import Sliding
>>> v = Variance()
>>> v.update(1e9 + 1.0); print(v.get())      # one value: null
None
>>> v.update(1e9 + 3.0); v.get()             # large offset, no cancellation
1.0
>>> v.update(1e9 + 5.0); v.revert(1e9 + 1.0); v.get()
1.0
>>> Variance.from_data(v.to_data()).get()
1.0
>>> w = Variance(); w.update(-1e200); w.update(1e200); print(w.get())   # overflows: null
None

The value exactly on the start of a sliding window has left it:

>>> w = Sliding(10_000)
>>> window_value(Stddev, w, [(0, 100.0), (5_000, 2.0), (10_000, 4.0)], as_of=10_000)
1.0
>>> print(window_value(Stddev, w, [(0, 100.0), (10_000, 4.0)], as_of=10_000))
None
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from features.aggregations.base import (
    Aggregation,
    count_of,
    exact_float,
    fractions,
    window_value,
)
from features.columns import Rows, segments, window_sums
from features.ddmath import accumulate, central_m2, difference, shifted_moment_terms, two_prod
from features.kernels import next_marked

__all__ = ["Stddev", "Variance", "window_value"]

_ZERO = (0.0, 0.0)
_DD = tuple[float, float]
_STATE = tuple[int, float | None, float, float, float, float, float, float, float, float]


def _variance_column(rows: Rows) -> np.ndarray:
    assert rows.values is not None
    seg = segments(rows)
    first = next_marked(rows.marked)
    shift = rows.values[np.minimum(first[seg[1]], len(rows.marked) - 1)]
    terms = shifted_moment_terms(rows.values, shift)
    yh, yl, y2h, y2l = (np.where(rows.marked, term, 0.0) for term in terms)
    s1h, s1l = window_sums(rows, yh, yl, seg)
    s2h, s2l = window_sums(rows, y2h, y2l, seg)
    n = rows.count.astype(np.float64)
    m2 = central_m2(n, s1h, s1l, s2h, s2l)
    var = np.where(np.isfinite(m2), np.maximum(m2, 0.0) / n, np.nan)
    return np.where(rows.count < 2, np.nan, var)


def _exact_variance(values: Sequence[float]) -> float | None:
    exact = fractions(values)
    if exact is None or len(exact) < 2:
        return None
    mean = sum(exact) / len(exact)
    return exact_float(sum((v - mean) ** 2 for v in exact) / len(exact))


class Variance(Aggregation):
    name = "variance"
    reads = "number"
    order_free = True

    def __init__(self) -> None:
        self.n = 0
        self.shift: float | None = None
        self.added = (_ZERO, _ZERO)
        self.reverted = (_ZERO, _ZERO)

    def _add(self, sums: tuple[_DD, _DD], x: float) -> tuple[_DD, _DD]:
        assert self.shift is not None
        yh, yl, y2h, y2l = shifted_moment_terms(x, self.shift)
        s1, s2 = sums
        return accumulate(*s1, yh, yl), accumulate(*s2, y2h, y2l)

    def update(self, x: float) -> None:
        if self.shift is None:
            self.shift = x
        self.n += 1
        self.added = self._add(self.added, x)

    def revert(self, x: float) -> None:
        self.n -= 1
        self.reverted = self._add(self.reverted, x)

    def moments(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Double-double ``S1`` and ``S2`` of the values held, shifted by ``self.shift``."""
        (a1, a2), (r1, r2) = self.added, self.reverted
        return difference(*a1, *r1), difference(*a2, *r2)

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, Variance)
        if other.n == 0:
            return
        assert other.shift is not None
        if self.shift is None:
            self.shift = other.shift
        d = other.shift - self.shift
        (s1h, s1l), (s2h, s2l) = other.moments()
        s1 = s1h + s1l
        a1, a2 = self.added
        a1 = accumulate(*accumulate(*a1, s1h, s1l), *two_prod(float(other.n), d))
        a2 = accumulate(*accumulate(*a2, s2h, s2l), *two_prod(2.0 * d, s1))
        a2 = accumulate(*a2, *two_prod(other.n * d, d))
        self.added = (a1, a2)
        self.n += other.n

    def get(self) -> float | None:
        if self.n < 2:
            return None
        (s1h, s1l), (s2h, s2l) = self.moments()
        m2 = central_m2(float(self.n), s1h, s1l, s2h, s2l)
        if not math.isfinite(m2):  # overflowed; -inf would clamp to a wrong 0.0
            return None
        return max(m2, 0.0) / self.n

    def to_data(self) -> list[Any]:
        (a1, a2), (r1, r2) = self.added, self.reverted
        return [self.n, self.shift, *a1, *a2, *r1, *r2]

    data_type = _STATE

    @classmethod
    def from_typed(cls, data: Any) -> Variance:
        n, shift, *sums = data
        if shift is None and n:
            raise ValueError("a variance over values has a shift")
        agg = cls()
        a1h, a1l, a2h, a2l, r1h, r1l, r2h, r2l = sums
        agg.n, agg.shift = count_of(n), shift
        agg.added = ((a1h, a1l), (a2h, a2l))
        agg.reverted = ((r1h, r1l), (r2h, r2l))
        return agg

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        return _variance_column(rows)

    @staticmethod
    def exact(values: Sequence[float], t: int) -> float | None:
        return _exact_variance(values)


class Stddev(Variance):
    name = "stddev"

    def get(self) -> float | None:
        var = super().get()
        return None if var is None else math.sqrt(var)

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        return np.sqrt(_variance_column(rows))

    @staticmethod
    def exact(values: Sequence[float], t: int) -> float | None:
        var = _exact_variance(values)
        return None if var is None else math.sqrt(var)
