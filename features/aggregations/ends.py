"""``first`` and ``last``: the value of the earliest / latest event in the window.

Events are ordered by event time, ties by arrival: ``first`` is the earliest-arrived
among the smallest timestamps, ``last`` the latest-arrived among the largest timestamps
``<= t``. Null values are skipped. Values are whatever the field holds (numbers come
back as floats).

``first`` over a lifetime keeps one value. Over a window whose start moves, the next
value becomes first when the oldest leaves: :class:`RollingFirst` keeps nothing and
reads the oldest value the window's shared buffer holds (the engine buffers it anyway).
``last`` only needs the newest value and how many are held: removing the oldest of
several leaves the newest in place.

Examples
--------
>>> from features.windows import Tumbling
>>> f, l = First(), Last()
>>> print(f.get(), l.get())
None None
>>> for x in ("a", "b", "c"): f.update(x); l.update(x)
>>> f.get(), l.get()
('a', 'c')
>>> l.revert("a"); l.revert("b"); l.get()
'c'
>>> l.revert("c"); print(l.get())
None
>>> RollingFirst.read(iter(["b", "c"]))     # the oldest value the window still holds
'b'

An event exactly on a tumbling boundary (t=10 s) ends the window (0 s, 10 s]:

>>> day = Tumbling(10_000)
>>> window_value(First, day, [(0, 1.0), (10_000, 2.0), (10_000, 3.0)], as_of=10_000)
2.0
>>> window_value(Last, day, [(0, 1.0), (10_000, 2.0), (10_000, 3.0)], as_of=10_000)
3.0
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from features.aggregations.base import Aggregation, Scalar, count_of, window_value
from features.columns import Rows, empty_as_nan
from features.kernels import last_marked, next_marked

__all__ = ["First", "Last", "RollingFirst", "window_value"]


class RollingFirst(Aggregation):
    """``first`` in a window whose start moves: the value is read from the buffer."""

    name = "first"
    reads = "value"
    reads_window = True

    @staticmethod
    def read(held: Iterator[Any]) -> Any:
        """The feature value from the values held, oldest first (read lazily)."""
        return next(held, None)


class First(Aggregation):
    name = "first"
    reads = "value"
    _windowed = RollingFirst

    def __init__(self) -> None:
        self.n = 0
        self.value: Any = None

    def update(self, x: Any) -> None:
        if not self.n:
            self.value = x
        self.n += 1

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, First)
        if not self.n:
            self.value = other.value
        self.n += other.n

    def get(self) -> Any:
        return self.value if self.n else None

    def to_data(self) -> list[Any]:
        return [self.n, self.value] if self.n else [0]

    data_type = list[Scalar]

    @classmethod
    def from_typed(cls, data: Any) -> First:
        return _restore_end(cls(), data)

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        assert rows.values is not None
        at = np.minimum(next_marked(rows.marked)[rows.start], len(rows.marked) - 1)
        return empty_as_nan(rows.values[at], rows.count == 0)

    @staticmethod
    def exact(values: Sequence[Any], t: int) -> Any:
        return values[0] if values else None


class Last(Aggregation):
    name = "last"
    reads = "value"

    def __init__(self) -> None:
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

    def to_data(self) -> list[Any]:
        return [self.n, self.value] if self.n else [0]

    data_type = list[Scalar]

    @classmethod
    def from_typed(cls, data: Any) -> Last:
        return _restore_end(cls(), data)

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        assert rows.values is not None
        at = np.maximum(last_marked(rows.marked), 0)
        return empty_as_nan(rows.values[at], rows.count == 0)

    @staticmethod
    def exact(values: Sequence[Any], t: int) -> Any:
        return values[-1] if values else None


def _restore_end(agg: First | Last, data: Any) -> Any:
    n, *value = data
    if type(n) is not int or len(value) != (1 if n else 0):
        raise ValueError(f"{agg.name} state is [0] or [n, value]")
    agg.n = count_of(n)
    agg.value = value[0] if n else None
    return agg
