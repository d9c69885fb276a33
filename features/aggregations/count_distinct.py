"""``count_distinct``: how many different non-null values the window holds (0 when empty).

Keeps a multiset (value → multiplicity) so a revert knows when a value has gone; the
state grows with the number of distinct values in the window.

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

The value exactly on a sliding window's start (t - 10 s) is out:

>>> window_value(CountDistinct, Sliding(10_000), [(0, "x"), (10_000, "y")], as_of=10_000)
1
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

from features.aggregations.base import Aggregation, window_value

__all__ = ["CountDistinct", "window_value"]


class CountDistinct(Aggregation):
    def __init__(self, revertible: bool = True) -> None:
        super().__init__(revertible)
        self.multiplicity: Counter[Hashable] = Counter()

    def update(self, x: Hashable) -> None:
        self.multiplicity[x] += 1

    def revert(self, x: Hashable) -> None:
        left = self.multiplicity[x] - 1
        if left:
            self.multiplicity[x] = left
        else:
            del self.multiplicity[x]

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, CountDistinct)
        self.multiplicity.update(other.multiplicity)

    def get(self) -> int:
        return len(self.multiplicity)
