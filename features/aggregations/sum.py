"""``sum`` and ``mean`` of the non-null values in the window (null when there are none).

The running sum is two compensated accumulators, values added and values reverted,
and the window's sum is their difference (see :mod:`features.ddmath`). That is exactly
a difference of prefix sums, the form the offline replay computes, so online and
offline agree bit for bit; reverting never loses precision the way ``s -= x`` would.

Examples
--------
>>> from features.windows import Tumbling
>>> s = Sum()
>>> print(s.get())                    # empty window: null, not 0
None
>>> for x in (1e16, 1.0, -1e16): s.update(x)
>>> s.get()                           # compensated: a plain float sum says 0.0
1.0
>>> s.revert(1e16); s.get()
-1e+16

Tumbling windows align to the epoch; an event exactly at 10 s closes (0 s, 10 s]:

>>> ten_s = Tumbling(10_000)
>>> window_value(Sum, ten_s, [(0, 1.0), (10_000, 2.0), (10_001, 4.0)], as_of=10_000)
2.0
>>> window_value(Mean, ten_s, [(10_000, 2.0), (10_001, 4.0), (20_000, 6.0)], as_of=20_000)
5.0
"""

from __future__ import annotations

from features.aggregations.base import Aggregation, window_value
from features.ddmath import accumulate, difference

__all__ = ["Mean", "Sum", "window_value"]


class Sum(Aggregation):
    def __init__(self, revertible: bool = True) -> None:
        super().__init__(revertible)
        self.n = 0
        self.added = (0.0, 0.0)
        self.reverted = (0.0, 0.0)

    def update(self, x: float) -> None:
        self.n += 1
        self.added = accumulate(*self.added, x, 0.0)

    def revert(self, x: float) -> None:
        self.n -= 1
        self.reverted = accumulate(*self.reverted, x, 0.0)

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, Sum)
        self.n += other.n
        self.added = accumulate(*self.added, *difference(*other.added, *other.reverted))

    def total(self) -> float:
        return difference(*self.added, *self.reverted)[0]

    def get(self) -> float | None:
        return self.total() if self.n else None


class Mean(Sum):
    def get(self) -> float | None:
        return self.total() / self.n if self.n else None
