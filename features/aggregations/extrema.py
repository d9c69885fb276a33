"""``min`` and ``max`` of the non-null values in the window (null when there are none).

A sliding window keeps a monotonic deque (the candidates that can still become the
extreme once older values leave), so update and revert are O(1) amortised; a lifetime
window (``revertible=False``) keeps just the extreme.

Examples
--------
>>> from features.windows import Hopping
>>> m = Min()
>>> print(m.get())
None
>>> for x in (3.0, 1.0, 2.0): m.update(x)
>>> m.get()
1.0
>>> m.revert(3.0); m.revert(1.0); m.get()     # the oldest values leave first
2.0

A 6 s window hopping every 2 s, as of t=5 s, is (0 s, 5 s]: the value at 0 s is out.

>>> window_value(Max, Hopping(6_000, 2_000), [(0, 9.0), (1, 4.0), (5_000, 2.0)], as_of=5_000)
4.0
"""

from __future__ import annotations

from collections import deque

from features.aggregations.base import Aggregation, window_value

__all__ = ["Max", "Min", "window_value"]


class _Extreme(Aggregation):
    def __init__(self, revertible: bool = True) -> None:
        super().__init__(revertible)
        self.candidates: deque[float] = deque()

    @staticmethod
    def _beats(a: float, b: float) -> bool:
        raise NotImplementedError

    def update(self, x: float) -> None:
        c = self.candidates
        if not self.revertible:
            if not c:
                c.append(x)
            elif self._beats(x, c[0]):
                c[0] = x
            return
        while c and self._beats(x, c[-1]):
            c.pop()
        c.append(x)

    def revert(self, x: float) -> None:
        # The oldest value is at the front unless a later, strictly better one evicted it.
        if self.candidates and self.candidates[0] == x:
            self.candidates.popleft()

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, _Extreme)
        for x in other.candidates:
            self.update(x)

    def get(self) -> float | None:
        return self.candidates[0] if self.candidates else None


class Min(_Extreme):
    @staticmethod
    def _beats(a: float, b: float) -> bool:
        return a < b


class Max(_Extreme):
    @staticmethod
    def _beats(a: float, b: float) -> bool:
        return a > b
