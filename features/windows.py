"""Window kinds: which event times a feature looks at, as of an event at time ``t``.

Every window is the half-open interval ``(start_excl(t), t]`` in integer epoch
milliseconds (UTC): exclusive of its start, inclusive of its end, so an event exactly on
a boundary belongs to the window that ends there. Windows know nothing about
aggregations; an aggregation never needs to know which window it runs in.

======================  ====================================================
kind                    ``start_excl(t)``
======================  ====================================================
``Lifetime()``          ``None`` (unbounded: every event ``<= t``)
``Tumbling(size)``      ``(ceil(t / size) - 1) * size`` (epoch-aligned)
``Hopping(size, hop)``  ``ceil(t / hop) * hop - size`` (epoch-aligned hops)
``Sliding(size)``       ``t - size``
======================  ====================================================

``start_excl`` is non-decreasing in ``t`` for every kind, which is what lets the online
engine evict from the front of a buffer and the offline replay use ``searchsorted``.
Events leave a sliding window one by one and a hopping window a hop at a time while
others stay (``sheds_events``: what is aggregated must remove them); a tumbling window
drops all its events at once when the next one begins, and a lifetime never drops any.

>>> day = Tumbling(86_400_000)
>>> day.covers(86_400_000, as_of=86_400_000)   # on the boundary: the day ending there
True
>>> day.covers(86_400_000, as_of=86_400_001)   # a new day has begun
False
>>> Sliding(10_000).start_excl(0), Hopping(6, 2).start_excl(5)
(-10000, 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from features.spec import Window


def _ceil_div(t: int, d: int) -> int:
    # Floor division of the negation is an exact integer ceiling, also for t <= 0.
    return -(-t // d)


@dataclass(frozen=True)
class TimeWindow:
    """Base of the window kinds: ``(start_excl(t), t]``; ``reach_ms`` bounds ``t - start``."""

    def start_excl(self, t: int) -> int | None:
        raise NotImplementedError

    def start_excl_array(self, ts: np.ndarray) -> np.ndarray | None:
        """Vectorised :meth:`start_excl` over an int64 array (``None`` for lifetime)."""
        raise NotImplementedError

    @property
    def reach_ms(self) -> int:
        """The largest ``t - start_excl(t)``: how far back the window can reach."""
        raise NotImplementedError

    #: Whether events leave the window while others stay in it.
    sheds_events: ClassVar[bool] = False

    def covers(self, ts: int, *, as_of: int) -> bool:
        """Whether an event at ``ts`` is in the window of an event at ``as_of``."""
        start = self.start_excl(as_of)
        return ts <= as_of and (start is None or ts > start)


@dataclass(frozen=True)
class Lifetime(TimeWindow):
    """Everything up to and including ``t``."""

    def start_excl(self, t: int) -> int | None:
        return None

    def start_excl_array(self, ts: np.ndarray) -> np.ndarray | None:
        return None

    @property
    def reach_ms(self) -> int:
        return 0


@dataclass(frozen=True)
class Tumbling(TimeWindow):
    """Epoch-aligned windows ``(k*size, (k+1)*size]``; the running value since the current began."""

    size_ms: int

    def start_excl(self, t: int) -> int:
        return (_ceil_div(t, self.size_ms) - 1) * self.size_ms

    def start_excl_array(self, ts: np.ndarray) -> np.ndarray:
        return (-((-ts) // self.size_ms) - 1) * self.size_ms

    @property
    def reach_ms(self) -> int:
        return self.size_ms


@dataclass(frozen=True)
class Hopping(TimeWindow):
    """The current partial hop plus the previous complete hops: ``(ceil(t/hop)*hop - size, t]``."""

    sheds_events = True

    size_ms: int
    hop_ms: int

    def start_excl(self, t: int) -> int:
        return _ceil_div(t, self.hop_ms) * self.hop_ms - self.size_ms

    def start_excl_array(self, ts: np.ndarray) -> np.ndarray:
        return -((-ts) // self.hop_ms) * self.hop_ms - self.size_ms

    @property
    def reach_ms(self) -> int:
        return self.size_ms


@dataclass(frozen=True)
class Sliding(TimeWindow):
    """The exact trailing window ``(t - size, t]``."""

    sheds_events = True

    size_ms: int

    def start_excl(self, t: int) -> int:
        return t - self.size_ms

    def start_excl_array(self, ts: np.ndarray) -> np.ndarray:
        return ts - self.size_ms

    @property
    def reach_ms(self) -> int:
        return self.size_ms


def window_of(spec: Window) -> TimeWindow:
    """The window object for a declared :class:`~features.spec.Window`."""
    if spec.kind == "lifetime":
        return Lifetime()
    assert spec.size_ms is not None  # the spec validator guarantees it
    if spec.kind == "tumbling":
        return Tumbling(spec.size_ms)
    if spec.kind == "hopping":
        assert spec.hop_ms is not None
        return Hopping(spec.size_ms, spec.hop_ms)
    return Sliding(spec.size_ms)
