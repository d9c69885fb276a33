"""``seconds_since_previous``: seconds from the previous matching event to this one.

"Previous" is the latest OTHER event among those the feature covers as of ``t`` (so
never the event itself): null for an entity's first matching event in the window, 0.0
for an equal timestamp. Its inputs are event timestamps in ms; it keeps how many are
held and the two latest, because reverts remove the oldest.

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

The event exactly 10 s before, on a sliding window's start, is no longer covered:

>>> print(window_value(SecondsSincePrevious, Sliding(10_000), [(0, 0)], as_of=10_000))
None
>>> window_value(SecondsSincePrevious, Sliding(10_000), [(1, 1)], as_of=10_000)
9.999
"""

from __future__ import annotations

from features.aggregations.base import Aggregation, window_value

__all__ = ["SecondsSincePrevious", "window_value"]


class SecondsSincePrevious(Aggregation):
    excludes_self = True

    def __init__(self, revertible: bool = True) -> None:
        super().__init__(revertible)
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
