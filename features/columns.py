"""One feature column, vectorised, for entities whose arrival order is event-time order.

Rows are sorted by (entity, arrival), so an event's window is the row range
``[start, row]``: ``start`` is the entity's first row whose time is after the window's
start, found with one ``searchsorted`` on a composite (entity, ts) key. Counts are
prefix-count differences; sums and moments are double-double prefix sums restarted
exactly where the online engine restarts (its window emptied), so both give the same
bits. Each aggregation's kernel (its ``column``) lives beside it in
:mod:`features.aggregations`; this module holds what they share. A value that is not
finite (inf, NaN) is null, as online.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from features.ddmath import difference
from features.kernels import prefix_before, segmented_dd_prefix

if TYPE_CHECKING:
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


def empty_as_nan(values: np.ndarray, empty: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        values[empty] = None
        return values
    return np.where(empty, np.nan, values)


def segments(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Where the online aggregation restarts: entity starts, and marked rows whose
    window held nothing else. Returns (first row of each segment, its start per row)."""
    new = rows.layout.is_entity_first | (rows.marked & (rows.count_before == 0))
    seg_first = np.flatnonzero(new)
    return seg_first, seg_first[np.cumsum(new) - 1]


def window_sums(
    rows: Rows, term_hi: np.ndarray, term_lo: np.ndarray, seg: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    seg_first, seg_start = seg
    prefix = segmented_dd_prefix(term_hi, term_lo, seg_first)
    return difference(*prefix, *prefix_before(prefix, rows.start, seg_start))


def feature_column(
    layout: Layout, plan: FeaturePlan, marked: np.ndarray, values: np.ndarray | None
) -> np.ndarray:
    """The feature's value for every row of ``layout``.

    ``marked``: the rows that count (filter holds, value not null); ``values``: the
    field (float64, object for first/last of non-numbers, int codes for count_distinct).
    """
    rows = Rows(layout, layout.window_start(plan.window), marked, values)
    with np.errstate(all="ignore"):
        return finite_or_null(plan.agg_type.column(rows))


def finite_or_null(column: np.ndarray) -> np.ndarray:
    """inf, -inf and NaN become null (NaN, or None in an object column), as online."""
    if column.dtype == object:
        bad = [isinstance(v, float) and not np.isfinite(v) for v in column]
        column[np.asarray(bad, dtype=bool)] = None
        return column
    if column.dtype.kind == "f":
        return np.where(np.isfinite(column), column, np.nan)
    return column
