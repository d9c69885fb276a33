"""``count``: the number of matching events in the window (0 when empty).

Examples
--------
>>> from features.windows import Sliding
>>> c = Count()
>>> c.get()
0
>>> c.update(None); c.update(None); c.revert(None); c.get()
1
>>> Count.from_data(c.to_data()).get()
1

A 10 s sliding window as of t=10 s is (0 s, 10 s]: the event exactly on its start has
left, the one exactly at t is in.

>>> window_value(Count, Sliding(10_000), [(0, 1), (5_000, 1), (10_000, 1)], as_of=10_000)
2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from features.aggregations.base import Aggregation, count_of, window_value
from features.columns import Rows

__all__ = ["Count", "window_value"]


class Count(Aggregation):
    """Counts events, not values: ``x`` is always None (the events carry no value here)."""

    name = "count"
    reads = "event"
    integer_valued = True
    order_free = True

    def __init__(self) -> None:
        self.n = 0

    def update(self, x: Any) -> None:
        self.n += 1

    def revert(self, x: Any) -> None:
        self.n -= 1

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, Count)
        self.n += other.n

    def get(self) -> int:
        return self.n

    def to_data(self) -> list[Any]:
        return [self.n]

    data_type = tuple[int]

    @classmethod
    def from_typed(cls, data: Any) -> Count:
        agg = cls()
        agg.n = count_of(data[0])
        return agg

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        return rows.count.astype(np.int64)

    @staticmethod
    def exact(values: Sequence[Any], t: int) -> int:
        return len(values)
