"""``count``: the number of matching events in the window (0 when empty).

Examples
--------
>>> from features.windows import Sliding
>>> c = Count()
>>> c.get()
0
>>> c.update(None); c.update(None); c.revert(None); c.get()
1

A 10 s sliding window as of t=10 s is (0 s, 10 s]: the event exactly on its start has
left, the one exactly at t is in.

>>> window_value(Count, Sliding(10_000), [(0, 1), (5_000, 1), (10_000, 1)], as_of=10_000)
2
"""

from __future__ import annotations

from typing import Any

from features.aggregations.base import Aggregation, window_value

__all__ = ["Count", "window_value"]


class Count(Aggregation):
    """Counts events, not values: ``x`` is ignored."""

    def __init__(self, revertible: bool = True) -> None:
        super().__init__(revertible)
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
