"""``sum`` and ``mean`` of the non-null values in the window (null when there are none).

The running sum is two compensated accumulators, values added and values reverted,
and the window's sum is their difference (see :mod:`features.ddmath`). That is exactly
a difference of prefix sums, the form the offline replay computes, so online and
offline agree bit for bit; reverting never loses precision the way ``s -= x`` would.
Should an accumulator overflow (values near ±1e308), the value is inf or NaN, which
the engine reports as null, until the window empties and the sums restart.

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
>>> Sum.from_data(s.to_data()).get()
-1e+16

Tumbling windows align to the epoch; an event exactly at 10 s closes (0 s, 10 s]:

>>> ten_s = Tumbling(10_000)
>>> window_value(Sum, ten_s, [(0, 1.0), (10_000, 2.0), (10_001, 4.0)], as_of=10_000)
2.0
>>> window_value(Mean, ten_s, [(10_000, 2.0), (10_001, 4.0), (20_000, 6.0)], as_of=20_000)
5.0
"""

from __future__ import annotations

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
from features.columns import Rows, empty_as_nan, segments, window_sums
from features.ddmath import accumulate, difference

__all__ = ["Mean", "Sum", "window_value"]


def _window_sum(rows: Rows) -> np.ndarray:
    assert rows.values is not None
    x = np.where(rows.marked, rows.values, 0.0)
    total, _ = window_sums(rows, x, np.zeros_like(x), segments(rows))
    return total


class Sum(Aggregation):
    name = "sum"
    reads = "number"
    order_free = True

    def __init__(self) -> None:
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

    def to_data(self) -> list[Any]:
        return [self.n, *self.added, *self.reverted]

    data_type = tuple[int, float, float, float, float]

    @classmethod
    def from_typed(cls, data: Any) -> Sum:
        agg = cls()
        n, ah, al, rh, rl = data
        agg.n, agg.added, agg.reverted = count_of(n), (ah, al), (rh, rl)
        return agg

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        return empty_as_nan(_window_sum(rows), rows.count == 0)

    @staticmethod
    def exact(values: Sequence[float], t: int) -> float | None:
        exact = fractions(values)
        return None if exact is None or not exact else exact_float(sum(exact))


class Mean(Sum):
    name = "mean"

    def get(self) -> float | None:
        return self.total() / self.n if self.n else None

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        return empty_as_nan(_window_sum(rows) / rows.count, rows.count == 0)

    @staticmethod
    def exact(values: Sequence[float], t: int) -> float | None:
        exact = fractions(values)
        return None if exact is None or not exact else exact_float(sum(exact) / len(exact))
