"""``first`` and ``last``: the value of the earliest / latest event in the window.

Events are ordered by event time, ties by arrival: ``first`` is the earliest-arrived
among the smallest timestamps, ``last`` the latest-arrived among the largest timestamps
``<= t``. Null values are skipped. Values are whatever the field holds (numbers come
back as floats).

``first`` under a sliding window must remember every value still in it (the next one
becomes first when the oldest leaves); with ``revertible=False`` it keeps one value.
``last`` only needs the newest value and how many are held.

Examples
--------
>>> from features.windows import Tumbling
>>> f, l = First(), Last()
>>> print(f.get(), l.get())
None None
>>> for x in ("a", "b", "c"): f.update(x); l.update(x)
>>> f.get(), l.get()
('a', 'c')
>>> f.revert("a"); f.get()
'b'

An event exactly on a tumbling boundary (t=10 s) ends the window (0 s, 10 s]:

>>> day = Tumbling(10_000)
>>> window_value(First, day, [(0, 1.0), (10_000, 2.0), (10_000, 3.0)], as_of=10_000)
2.0
>>> window_value(Last, day, [(0, 1.0), (10_000, 2.0), (10_000, 3.0)], as_of=10_000)
3.0
"""

from __future__ import annotations

from collections import deque
from typing import Any

from features.aggregations.base import Aggregation, window_value

__all__ = ["First", "Last", "window_value"]


class First(Aggregation):
    def __init__(self, revertible: bool = True) -> None:
        super().__init__(revertible)
        self.values: deque[Any] = deque()

    def update(self, x: Any) -> None:
        if self.revertible or not self.values:
            self.values.append(x)

    def revert(self, x: Any) -> None:
        self.values.popleft()

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, First)
        for x in other.values:
            self.update(x)

    def get(self) -> Any:
        return self.values[0] if self.values else None


class Last(Aggregation):
    def __init__(self, revertible: bool = True) -> None:
        super().__init__(revertible)
        self.n = 0
        self.value: Any = None

    def update(self, x: Any) -> None:
        self.n += 1
        self.value = x

    def revert(self, x: Any) -> None:
        self.n -= 1
        if self.n == 0:
            self.value = None

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, Last)
        if other.n:
            self.n += other.n
            self.value = other.value

    def get(self) -> Any:
        return self.value if self.n else None
