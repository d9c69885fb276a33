"""One feature column, vectorised, for entities whose arrival order is event-time order.

Rows are sorted by (entity, arrival), so an event's window is the row range
``[start, row]``: ``start`` is the entity's first row whose time is after the window's
start, found with one ``searchsorted`` on a composite (entity, ts) key. Counts are
prefix-count differences; sums and moments are double-double prefix sums restarted
exactly where the online engine restarts (its window emptied), so both give the same
bits; min/max use a sparse table; first/last/seconds_since_previous the nearest
contributing row; count_distinct counts, per value, the rows where it is first in range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from features.ddmath import central_m2, difference, shifted_moment_terms
from features.kernels import (
    distinct_in_ranges,
    last_marked,
    next_marked,
    prefix_before,
    range_reduce,
    segmented_dd_prefix,
)
from features.plan import FeaturePlan
from features.windows import TimeWindow


@dataclass
class Layout:
    """Rows of in-order entities, sorted by (entity, arrival), hence by ts per entity."""

    ts: np.ndarray
    entity: np.ndarray
    _starts: dict[TimeWindow, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ts)
        self.pos = np.arange(n)
        first = np.ones(n, dtype=bool)
        first[1:] = self.entity[1:] != self.entity[:-1]
        self.is_entity_first = first
        self.entity_start = np.maximum.accumulate(np.where(first, self.pos, 0)) if n else self.pos

    def window_start(self, window: TimeWindow) -> np.ndarray:
        """Per row, the first row of its entity inside the row's window."""
        if window not in self._starts:
            self._starts[window] = self._compute_start(window)
        return self._starts[window]

    def _compute_start(self, window: TimeWindow) -> np.ndarray:
        lo = window.start_excl_array(self.ts)
        if lo is None or len(self.ts) == 0:
            return self.entity_start
        base = int(self.ts.min()) - window.reach_ms - 1
        span = int(self.ts.max()) - base + 1
        if (int(self.entity.max()) + 1) * span < 2**62:
            key = self.entity.astype(np.int64) * span + (self.ts - base)
            return np.searchsorted(key, self.entity * span + (lo - base), side="right")
        out = np.empty(len(self.ts), dtype=np.int64)  # keys would overflow: per entity
        firsts = np.flatnonzero(self.is_entity_first)
        for a, b in zip(firsts, np.append(firsts[1:], len(self.ts)), strict=True):
            out[a:b] = a + np.searchsorted(self.ts[a:b], lo[a:b], side="right")
        return out


@dataclass
class Rows:
    """What one feature sees: its window ranges, contributing rows and their values."""

    layout: Layout
    start: np.ndarray
    marked: np.ndarray
    values: np.ndarray | None

    def __post_init__(self) -> None:
        prefix = np.concatenate([[0], np.cumsum(self.marked)])
        self.count = prefix[self.layout.pos + 1] - prefix[self.start]
        self.count_before = self.count - self.marked


def _empty_as_nan(values: np.ndarray, empty: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        values[empty] = None
        return values
    return np.where(empty, np.nan, values)


def _segments(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Where the online aggregation restarts: entity starts, and marked rows whose
    window held nothing else. Returns (first row of each segment, its start per row)."""
    new = rows.layout.is_entity_first | (rows.marked & (rows.count_before == 0))
    seg_first = np.flatnonzero(new)
    return seg_first, seg_first[np.cumsum(new) - 1]


def _window_sums(
    rows: Rows, term_hi: np.ndarray, term_lo: np.ndarray, seg: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    seg_first, seg_start = seg
    prefix = segmented_dd_prefix(term_hi, term_lo, seg_first)
    return difference(*prefix, *prefix_before(prefix, rows.start, seg_start))


def _sum(rows: Rows) -> np.ndarray:
    assert rows.values is not None
    x = np.where(rows.marked, rows.values, 0.0)
    total, _ = _window_sums(rows, x, np.zeros_like(x), _segments(rows))
    return total


def sum_column(rows: Rows) -> np.ndarray:
    return _empty_as_nan(_sum(rows), rows.count == 0)


def mean_column(rows: Rows) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _empty_as_nan(_sum(rows) / rows.count, rows.count == 0)


def variance_column(rows: Rows) -> np.ndarray:
    assert rows.values is not None
    seg = _segments(rows)
    first = next_marked(rows.marked)
    shift = rows.values[np.minimum(first[seg[1]], len(rows.marked) - 1)]
    terms = shifted_moment_terms(rows.values, shift)
    yh, yl, y2h, y2l = (np.where(rows.marked, term, 0.0) for term in terms)
    s1h, s1l = _window_sums(rows, yh, yl, seg)
    s2h, s2l = _window_sums(rows, y2h, y2l, seg)
    n = rows.count.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(central_m2(n, s1h, s1l, s2h, s2l), 0.0) / n
    return np.where(rows.count < 2, np.nan, var)


def stddev_column(rows: Rows) -> np.ndarray:
    return np.sqrt(variance_column(rows))


def _extreme(rows: Rows, ufunc: Callable[..., np.ndarray], fill: float) -> np.ndarray:
    assert rows.values is not None
    v = np.where(rows.marked, rows.values, fill)
    return _empty_as_nan(range_reduce(v, rows.start, rows.layout.pos, ufunc), rows.count == 0)


def min_column(rows: Rows) -> np.ndarray:
    return _extreme(rows, np.minimum, np.inf)


def max_column(rows: Rows) -> np.ndarray:
    return _extreme(rows, np.maximum, -np.inf)


def first_column(rows: Rows) -> np.ndarray:
    assert rows.values is not None
    at = np.minimum(next_marked(rows.marked)[rows.start], len(rows.marked) - 1)
    return _empty_as_nan(rows.values[at], rows.count == 0)


def last_column(rows: Rows) -> np.ndarray:
    assert rows.values is not None
    at = np.maximum(last_marked(rows.marked), 0)
    return _empty_as_nan(rows.values[at], rows.count == 0)


def count_column(rows: Rows) -> np.ndarray:
    return rows.count.astype(np.int64)


def count_distinct_column(rows: Rows) -> np.ndarray:
    assert rows.values is not None
    return distinct_in_ranges(rows.values, rows.layout.entity, rows.marked, rows.start)


def seconds_since_previous_column(rows: Rows) -> np.ndarray:
    layout = rows.layout
    before = np.where(layout.is_entity_first, -1, last_marked(rows.marked)[layout.pos - 1])
    found = before >= rows.start
    gap = (layout.ts - layout.ts[np.maximum(before, 0)]).astype(np.float64) / 1000.0
    return np.where(found, gap, np.nan)


_COLUMNS: dict[str, Callable[[Rows], np.ndarray]] = {
    "count": count_column,
    "sum": sum_column,
    "mean": mean_column,
    "min": min_column,
    "max": max_column,
    "variance": variance_column,
    "stddev": stddev_column,
    "first": first_column,
    "last": last_column,
    "count_distinct": count_distinct_column,
    "seconds_since_previous": seconds_since_previous_column,
}


def feature_column(
    layout: Layout, plan: FeaturePlan, marked: np.ndarray, values: np.ndarray | None
) -> np.ndarray:
    """The feature's value for every row of ``layout``.

    ``marked``: the rows that count (filter holds, value not null); ``values``: the
    field (float64, object for first/last of non-numbers, int codes for count_distinct).
    """
    rows = Rows(layout, layout.window_start(plan.window), marked, values)
    return _COLUMNS[plan.agg](rows)
