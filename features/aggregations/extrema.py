"""``min`` and ``max`` of the non-null values in the window (null when there are none).

Two honest classes each, as River's ``stats.Max`` and ``stats.RollingMax``: over a
lifetime :class:`Max` keeps the extreme only; in a window whose start moves,
:class:`RollingMax` keeps a monotonic deque (the candidates that can still become the
extreme once older values leave), so update and revert are O(1) amortised.

Examples
--------
>>> from features.windows import Hopping
>>> m = RollingMin()
>>> print(m.get())
None
>>> for x in (3.0, 1.0, 2.0): m.update(x)
>>> m.get(), m.to_data()          # 3.0 can never be the minimum again
(1.0, [1.0, 2.0])
>>> m.revert(3.0); m.revert(1.0); m.get()     # the oldest values leave first
2.0
>>> lifetime = Max(); lifetime.update(2.0); lifetime.update(5.0); lifetime.to_data()
[5.0]

A 6 s window hopping every 2 s, as of t=5 s, is (0 s, 5 s]: the value at 0 s is out.

>>> window_value(Max, Hopping(6_000, 2_000), [(0, 9.0), (1, 4.0), (5_000, 2.0)], as_of=5_000)
4.0
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from features.aggregations.base import Aggregation, window_value
from features.columns import Rows, empty_as_nan
from features.kernels import range_reduce

__all__ = ["Max", "Min", "RollingMax", "RollingMin", "window_value"]


def _extreme_column(rows: Rows, ufunc: Callable[..., np.ndarray], fill: float) -> np.ndarray:
    assert rows.values is not None
    v = np.where(rows.marked, rows.values, fill)
    return empty_as_nan(range_reduce(v, rows.start, rows.layout.pos, ufunc), rows.count == 0)


class _Rolling(Aggregation):
    reads = "number"

    def __init__(self) -> None:
        self.candidates: deque[float] = deque()

    @staticmethod
    def _beats(a: float, b: float) -> bool:
        raise NotImplementedError

    def update(self, x: float) -> None:
        c = self.candidates
        while c and self._beats(x, c[-1]):
            c.pop()
        c.append(x)

    def revert(self, x: float) -> None:
        # The oldest value is at the front unless a later, strictly better one evicted it.
        if self.candidates and self.candidates[0] == x:
            self.candidates.popleft()

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, _Rolling)
        for x in other.candidates:
            self.update(x)

    def get(self) -> float | None:
        return self.candidates[0] if self.candidates else None

    def to_data(self) -> list[Any]:
        return list(self.candidates)

    data_type = list[float]

    @classmethod
    def from_typed(cls, data: Any) -> _Rolling:
        agg = cls()
        agg.candidates = deque(data)
        return agg


class _Lifetime(Aggregation):
    reads = "number"
    order_free = True

    def __init__(self) -> None:
        self.value: float | None = None

    @staticmethod
    def _beats(a: float, b: float) -> bool:
        raise NotImplementedError

    def update(self, x: float) -> None:
        if self.value is None or self._beats(x, self.value):
            self.value = x

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, _Lifetime)
        if other.value is not None:
            self.update(other.value)

    def get(self) -> float | None:
        return self.value

    def to_data(self) -> list[Any]:
        return [] if self.value is None else [self.value]

    data_type = list[float]

    @classmethod
    def from_typed(cls, data: Any) -> _Lifetime:
        agg = cls()
        held = data
        if len(held) > 1:
            raise ValueError(f"{cls.name} over a lifetime keeps at most one value")
        agg.value = held[0] if held else None
        return agg


def _less(a: float, b: float) -> bool:
    return a < b


def _greater(a: float, b: float) -> bool:
    return a > b


class RollingMin(_Rolling):
    name = "min"
    _beats = staticmethod(_less)


class RollingMax(_Rolling):
    name = "max"
    _beats = staticmethod(_greater)


class Min(_Lifetime):
    name = "min"
    _beats = staticmethod(_less)
    _windowed = RollingMin

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        return _extreme_column(rows, np.minimum, np.inf)

    @staticmethod
    def exact(values: Sequence[float], t: int) -> float | None:
        return min(values, default=None)


class Max(_Lifetime):
    name = "max"
    _beats = staticmethod(_greater)
    _windowed = RollingMax

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        return _extreme_column(rows, np.maximum, -np.inf)

    @staticmethod
    def exact(values: Sequence[float], t: int) -> float | None:
        return max(values, default=None)
