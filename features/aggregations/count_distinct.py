"""``count_distinct``: how many different non-null values the window holds (0 when empty).

Keeps a multiset (value → multiplicity) so a revert knows when a value has gone; the
state grows with the number of distinct values in the window (in a lifetime window,
with every distinct value ever seen).

Examples
--------
>>> from features.windows import Sliding
>>> d = CountDistinct()
>>> d.get()
0
>>> for x in ("a", "b", "a"): d.update(x)
>>> d.get()
2
>>> d.revert("a"); d.get()      # one "a" is still held
2
>>> d.revert("b"); d.get()
1
>>> CountDistinct.from_data(d.to_data()).multiplicity
Counter({'a': 1})

The value exactly on a sliding window's start (t - 10 s) is out:

>>> window_value(CountDistinct, Sliding(10_000), [(0, "x"), (10_000, "y")], as_of=10_000)
1
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from features.aggregations.base import Aggregation, Scalar, window_value
from features.columns import Rows
from features.kernels import distinct_in_ranges

__all__ = ["CountDistinct", "window_value"]


class CountDistinct(Aggregation):
    name = "count_distinct"
    reads = "key"
    integer_valued = True
    order_free = True

    def __init__(self) -> None:
        self.multiplicity: Counter[Hashable] = Counter()

    def update(self, x: Hashable) -> None:
        self.multiplicity[x] += 1

    def revert(self, x: Hashable) -> None:
        left = self.multiplicity.pop(x, 0) - 1
        if left > 0:
            self.multiplicity[x] = left

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, CountDistinct)
        self.multiplicity.update(other.multiplicity)

    def get(self) -> int:
        return len(self.multiplicity)

    def to_data(self) -> list[Any]:
        """``[value, multiplicity, value, multiplicity, ...]``."""
        return [v for pair in self.multiplicity.items() for v in pair]

    data_type = list[Scalar]

    @classmethod
    def from_typed(cls, data: Any) -> CountDistinct:
        flat = data
        if len(flat) % 2:
            raise ValueError("count_distinct state is value, multiplicity pairs")
        agg = cls()
        for value, n in zip(flat[::2], flat[1::2], strict=True):
            if type(n) is not int or n <= 0 or value in agg.multiplicity:
                raise ValueError("count_distinct multiplicities are distinct values, counts > 0")
            agg.multiplicity[value] = n
        return agg

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        assert rows.values is not None
        return distinct_in_ranges(rows.values, rows.layout.entity, rows.marked, rows.start)

    @staticmethod
    def exact(values: Sequence[Any], t: int) -> int:
        return len(set(values))
