"""``variance`` and ``stddev``: population statistics (divide by n), null below 2 values.

Welford's update (Welford 1962, Knuth TAOCP vol. 2 §4.2.2) is stable when values only
arrive, but drifts when a sliding window reverts them. Instead the state is the shifted
moment sums ``S1 = sum(y)``, ``S2 = sum(y*y)`` with ``y = x - K`` (``K`` the first value
seen; Chan, Golub & LeVeque 1983, "shifted data") held as double-double accumulators of
values added and values reverted, and ``M2 = S2 - S1**2 / n`` is evaluated in
double-double (:func:`features.ddmath.central_m2`). The offline replay evaluates the same
formulas on prefix sums, so both engines give the same bits. ``merge`` re-shifts the
other state's sums to this ``K`` (the pairwise update of Chan, Golub & LeVeque 1979).

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

The value exactly on the start of a sliding window has left it:

>>> w = Sliding(10_000)
>>> window_value(Stddev, w, [(0, 100.0), (5_000, 2.0), (10_000, 4.0)], as_of=10_000)
1.0
>>> print(window_value(Stddev, w, [(0, 100.0), (10_000, 4.0)], as_of=10_000))
None
"""

from __future__ import annotations

import math

from features.aggregations.base import Aggregation, window_value
from features.ddmath import accumulate, central_m2, difference, shifted_moment_terms, two_prod

__all__ = ["Stddev", "Variance", "window_value"]

_ZERO = (0.0, 0.0)


class Variance(Aggregation):
    def __init__(self, revertible: bool = True) -> None:
        super().__init__(revertible)
        self.n = 0
        self.shift: float | None = None
        self.added = (_ZERO, _ZERO)
        self.reverted = (_ZERO, _ZERO)

    def _add(self, sums: tuple[tuple[float, float], tuple[float, float]], x: float) -> tuple:
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
        return max(m2, 0.0) / self.n


class Stddev(Variance):
    def get(self) -> float | None:
        var = super().get()
        return None if var is None else math.sqrt(var)
