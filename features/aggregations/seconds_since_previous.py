"""``seconds_since_previous``: seconds from the previous matching event to this one.

"Previous" is the latest OTHER event among those the feature covers as of ``t`` (so
never the event itself): null for an entity's first matching event in the window, 0.0
for an equal timestamp. Its inputs are event timestamps in ms; it keeps how many are
held and the two latest: reverts remove the oldest, which leaves the latest in place
while more than one is held.

``get()`` is the gap between the two latest timestamps held; the feature value for an
event at ``t`` is :meth:`value_as_of`, read before the event itself is added.

Examples
--------
>>> from features.windows import Sliding
>>> s = SecondsSincePrevious()
>>> print(s.value_as_of(1_000))       # nothing before: null
None
>>> s.update(1_000); s.value_as_of(1_000)   # same timestamp: 0
0.0
>>> s.update(1_000); s.update(3_500); s.get()
2.5
>>> s.to_data()
[3, 3500, 1000]

The event exactly 10 s before, on a sliding window's start, is no longer covered:

>>> print(window_value(SecondsSincePrevious, Sliding(10_000), [(0, 0)], as_of=10_000))
None
>>> window_value(SecondsSincePrevious, Sliding(10_000), [(1, 1)], as_of=10_000)
9.999
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from features.aggregations.base import Aggregation, count_of, window_value
from features.columns import Rows
from features.kernels import last_marked

__all__ = ["SecondsSincePrevious", "window_value"]


class SecondsSincePrevious(Aggregation):
    name = "seconds_since_previous"
    reads = "time"
    excludes_self = True

    def __init__(self) -> None:
        self.n = 0
        self.latest = 0
        self.before_latest = 0

    def update(self, ts: int) -> None:
        self.n += 1
        self.before_latest, self.latest = self.latest, ts

    def revert(self, ts: int) -> None:
        self.n -= 1

    def merge(self, other: Aggregation) -> None:
        assert isinstance(other, SecondsSincePrevious)
        if other.n == 1:
            self.update(other.latest)
        elif other.n > 1:
            self.n += other.n
            self.before_latest, self.latest = other.before_latest, other.latest

    def get(self) -> float | None:
        return (self.latest - self.before_latest) / 1000 if self.n >= 2 else None

    def value_as_of(self, t: int) -> float | None:
        return (t - self.latest) / 1000 if self.n else None

    def to_data(self) -> list[Any]:
        return [self.n, self.latest, self.before_latest]

    data_type = tuple[int, int, int]

    @classmethod
    def from_typed(cls, data: Any) -> SecondsSincePrevious:
        agg = cls()
        n, agg.latest, agg.before_latest = data
        agg.n = count_of(n)
        return agg

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        layout = rows.layout
        before = np.where(layout.is_entity_first, -1, last_marked(rows.marked)[layout.pos - 1])
        found = before >= rows.start
        gap = (layout.ts - layout.ts[np.maximum(before, 0)]).astype(np.float64) / 1000.0
        return np.where(found, gap, np.nan)

    @staticmethod
    def exact(values: Sequence[int], t: int) -> float | None:
        """``values``: the times of the covered events other than this one."""
        return (t - max(values)) / 1000 if values else None
