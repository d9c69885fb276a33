"""Watermarks and lateness: which events are too late to apply.

The watermark of a partition is the highest event time accepted on it. An event is late
when ``ts < watermark - allowed_lateness_ms``; a late event is rejected (the worker
routes it to the DLQ with reason ``late``) and does not move the watermark.

:func:`late_mask` answers the same question for a whole array at once. A late event lies
below the watermark, so it could never have raised it: the running maximum over all
events equals the running maximum over the accepted ones, and ``cummax`` is exact.

>>> wm = Watermark(allowed_lateness_ms=1_000)
>>> [wm.observe(t) for t in (5_000, 4_000, 3_999, 6_000)]
[True, True, False, True]
>>> late_mask(np.array([5_000, 4_000, 3_999, 6_000]), None, 1_000).tolist()
[False, False, True, False]
"""

from __future__ import annotations

import numpy as np


def is_late(ts_ms: int, watermark_ms: int | None, allowed_lateness_ms: int) -> bool:
    """The lateness rule for one event against its partition's watermark (None: nothing
    accepted yet, so nothing is late)."""
    return watermark_ms is not None and ts_ms < watermark_ms - allowed_lateness_ms


class Watermark:
    """The watermark of one partition."""

    def __init__(self, allowed_lateness_ms: int) -> None:
        if allowed_lateness_ms < 0:
            raise ValueError("allowed_lateness_ms must be >= 0")
        self.allowed_lateness_ms = allowed_lateness_ms
        self.watermark_ms: int | None = None

    def is_late(self, ts_ms: int) -> bool:
        return is_late(ts_ms, self.watermark_ms, self.allowed_lateness_ms)

    def observe(self, ts_ms: int) -> bool:
        """Accept ``ts_ms`` (True, advancing the watermark) or reject it as late (False)."""
        if self.is_late(ts_ms):
            return False
        if self.watermark_ms is None or ts_ms > self.watermark_ms:
            self.watermark_ms = ts_ms
        return True


def late_mask(
    ts: np.ndarray, partition: np.ndarray | None, allowed_lateness_ms: int
) -> np.ndarray:
    """Which events, in arrival order, a per-partition :class:`Watermark` would reject."""
    ts = np.asarray(ts, dtype=np.int64)
    if partition is None:
        running_max = np.maximum.accumulate(ts) if len(ts) else ts
    else:
        import pandas as pd  # offline only: the online engine does without it

        by_partition = pd.Series(ts).groupby(np.asarray(partition), sort=False, dropna=False)
        running_max = by_partition.cummax().to_numpy()
    return ts < running_max - allowed_lateness_ms
