"""Vectorised building blocks of the offline replay (numpy only, no pandas).

Rows are sorted by (entity, arrival); ``seg_first`` lists the first row of each
segment, a run of rows whose running sums the online engine also accumulates without a
restart. Window ranges are ``[start, row]`` in row positions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from features.ddmath import sum_error


def segmented_cumsum(x: np.ndarray, seg_first: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each segment, added strictly left to right.

    Segments are laid out as the rows of 2-D blocks (grouped by length, so padding at
    most doubles the work) and summed with ``cumsum(axis=1)``: the same sequence of
    roundings as ``total += x`` one value at a time, which the online engine does.
    """
    n = len(x)
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    lengths = np.diff(np.append(seg_first, n))
    bucket = np.frexp(lengths.astype(np.float64))[1]
    for b in np.unique(bucket):
        segs = np.flatnonzero(bucket == b)
        starts, lens = seg_first[segs], lengths[segs]
        width = int(lens.max())
        if width == 1:
            out[starts] = x[starts]
            continue
        idx = starts[:, None] + np.arange(width)
        valid = np.arange(width) < lens[:, None]
        block = np.where(valid, x[np.minimum(idx, n - 1)], 0.0)
        out[idx[valid]] = np.cumsum(block, axis=1)[valid]
    return out


def segmented_dd_prefix(
    term_hi: np.ndarray, term_lo: np.ndarray, seg_first: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment double-double prefix sums, step for step :func:`features.ddmath.accumulate`."""
    hi = segmented_cumsum(term_hi, seg_first)
    before = np.empty_like(hi)
    before[0:1] = 0.0
    before[1:] = hi[:-1]
    before[seg_first] = 0.0
    lo = segmented_cumsum(sum_error(before, term_hi, hi) + term_lo, seg_first)
    return hi, lo


def prefix_before(
    prefix: tuple[np.ndarray, np.ndarray], start: np.ndarray, seg_start_of_row: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The prefix just before ``start`` within each row's segment, (0, 0) if none."""
    at = start - 1
    inside = at >= seg_start_of_row
    at = np.where(inside, at, 0)
    return np.where(inside, prefix[0][at], 0.0), np.where(inside, prefix[1][at], 0.0)


def range_reduce(
    v: np.ndarray, start: np.ndarray, end: np.ndarray, ufunc: Callable[..., np.ndarray]
) -> np.ndarray:
    """``ufunc.reduce(v[start:end+1])`` per row via a sparse table (min/max: idempotent)."""
    out = np.empty(len(start), dtype=v.dtype)
    if len(start) == 0:
        return out
    length = end - start + 1
    level_of = np.frexp(length.astype(np.float64))[1] - 1  # floor(log2(length))
    table = v
    for level in range(int(level_of.max()) + 1):
        if level:
            half = 1 << (level - 1)
            table = ufunc(table[:-half], table[half:])
        rows = np.flatnonzero(level_of == level)
        if len(rows):
            out[rows] = ufunc(table[start[rows]], table[end[rows] - (1 << level) + 1])
    return out


def next_marked(marked: np.ndarray) -> np.ndarray:
    """For each position, the first marked position at or after it (``len`` if none)."""
    n = len(marked)
    idx = np.where(marked, np.arange(n), n)
    return np.minimum.accumulate(idx[::-1])[::-1] if n else idx


def last_marked(marked: np.ndarray) -> np.ndarray:
    """For each position, the last marked position at or before it (-1 if none)."""
    idx = np.where(marked, np.arange(len(marked)), -1)
    return np.maximum.accumulate(idx) if len(idx) else idx


def distinct_in_ranges(
    codes: np.ndarray, entity: np.ndarray, marked: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """Distinct ``codes`` among marked rows in ``[start[i], i]`` (``start`` non-decreasing).

    A marked row ``j`` is the earliest of its value in ``[s, i]`` iff its previous
    occurrence ``p`` lies before ``s``. As ``start`` never decreases, the rows ``i`` for
    which that holds form one interval: from the first ``i >= j`` with ``start[i] > p``
    to the last with ``start[i] <= j``. Counting intervals is a difference array.
    """
    n = len(codes)
    rows = np.flatnonzero(marked)
    order = rows[np.lexsort((rows, codes[rows], entity[rows]))]
    same = (entity[order[1:]] == entity[order[:-1]]) & (codes[order[1:]] == codes[order[:-1]])
    previous = np.full(n, -1, dtype=np.int64)
    previous[order[1:][same]] = order[:-1][same]
    lo = np.maximum(rows, np.searchsorted(start, previous[rows], side="right"))
    hi = np.searchsorted(start, rows, side="right") - 1
    keep = lo <= hi
    diff = np.bincount(lo[keep], minlength=n + 1) - np.bincount(hi[keep] + 1, minlength=n + 1)
    return np.cumsum(diff[:n])
