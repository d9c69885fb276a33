"""A sliding time window of counts with bounded memory: a ring of time buckets.

The last ``window_seconds`` are split into ``n_buckets`` buckets of equal length; each
bucket holds a row of ``width`` counts (bins of a histogram, or per-group tallies). A
bucket is reused, zeroed, when time moves past it, so memory is ``n_buckets x width``
numbers whatever the event rate. The window is therefore approximate at its old edge by
at most one bucket: it covers the current (partial) bucket and the ``n_buckets - 1``
before it.

Time is passed in (``now``, seconds on any one clock); nothing here reads a clock.

>>> w = TimeBuckets(window_seconds=60, n_buckets=6, width=2)
>>> w.add(now=0.0, column=0)
>>> w.add(now=5.0, column=1, amount=2)
>>> w.totals(now=9.9).tolist()
[1.0, 2.0]
>>> w.totals(now=55.0).tolist()          # bucket [0, 10) is still the oldest of six
[1.0, 2.0]
>>> w.totals(now=60.0).tolist()          # ... and has now slid out
[0.0, 0.0]
>>> w.add(now=70.0, column=0)
>>> w.add(now=1.0, column=0)             # older than the window: ignored, counted
>>> w.dropped
1
"""

from __future__ import annotations

import math

import numpy as np


class TimeBuckets:
    """Counts over the last ``window_seconds``, in ``n_buckets`` ring buckets."""

    def __init__(self, window_seconds: float, n_buckets: int, width: int) -> None:
        if window_seconds <= 0 or n_buckets < 1 or width < 1:
            raise ValueError("window_seconds > 0, n_buckets >= 1 and width >= 1 are required")
        self.bucket_seconds = window_seconds / n_buckets
        self.n_buckets = n_buckets
        self.width = width
        self._counts = np.zeros((n_buckets, width), dtype=np.float64)
        self._ids = np.full(n_buckets, -(2**62), dtype=np.int64)
        self._newest = -(2**62)
        #: Updates older than the window when they arrived (out-of-order time).
        self.dropped = 0

    def _bucket_id(self, now: float) -> int:
        return math.floor(now / self.bucket_seconds)

    def _row(self, now: float) -> int | None:
        """The ring row for time ``now``, zeroing a stale bucket; None if too old."""
        bucket = self._bucket_id(now)
        if bucket <= self._newest - self.n_buckets:
            self.dropped += 1
            return None
        self._newest = max(self._newest, bucket)
        row = bucket % self.n_buckets
        if self._ids[row] != bucket:
            self._counts[row] = 0.0
            self._ids[row] = bucket
        return row

    def add(self, now: float, column: int, amount: float = 1.0) -> None:
        """Add ``amount`` to ``column`` at time ``now``."""
        row = self._row(now)
        if row is not None:
            self._counts[row, column] += amount

    def add_many(self, now: float, columns: list[int], amount: float = 1.0) -> None:
        """Add ``amount`` to each of ``columns`` at time ``now`` (one bucket lookup)."""
        row = self._row(now)
        if row is not None:
            for column in columns:
                self._counts[row, column] += amount

    def add_counts(self, now: float, counts: np.ndarray) -> None:
        """Add a whole row of counts (one per column) at time ``now``."""
        row = self._row(now)
        if row is not None:
            self._counts[row] += counts

    def totals(self, now: float) -> np.ndarray:
        """The counts summed over the buckets inside the window ending at ``now``."""
        bucket = self._bucket_id(now)
        live = (self._ids > bucket - self.n_buckets) & (self._ids <= bucket)
        return self._counts[live].sum(axis=0)

    def clear(self) -> None:
        self._counts[:] = 0.0
        self._ids[:] = -(2**62)
        self._newest = -(2**62)

    @property
    def nbytes(self) -> int:
        """Memory held by the counts, independent of how many events were added."""
        return int(self._counts.nbytes + self._ids.nbytes)
