"""The ring of time buckets: sliding, bounded, honest about out-of-order time."""

from __future__ import annotations

import numpy as np
import pytest

from monitors import TimeBuckets


def test_window_covers_current_bucket_and_the_previous_ones() -> None:
    w = TimeBuckets(window_seconds=60, n_buckets=6, width=1)
    for t in range(0, 120, 2):
        w.add(float(t), 0)
    # at t=119.x the live buckets are [60, 120): 30 events at 2 s spacing
    assert w.totals(119.5)[0] == 30
    assert w.totals(1000.0)[0] == 0


def test_memory_is_bounded_whatever_the_number_of_events() -> None:
    w = TimeBuckets(window_seconds=3600, n_buckets=12, width=102)
    before = w.nbytes
    rng = np.random.default_rng(0)
    for i in range(100_000):
        w.add(i * 0.5, int(rng.integers(0, 102)))
    assert w.nbytes == before == 12 * 102 * 8 + 12 * 8
    assert w.totals(50_000.0).sum() <= 3600 / 0.5


def test_updates_older_than_the_window_are_dropped_and_counted() -> None:
    w = TimeBuckets(window_seconds=10, n_buckets=2, width=1)
    w.add(100.0, 0)
    w.add(80.0, 0)
    assert w.dropped == 1
    w.add(95.0, 0)  # the previous bucket is still live
    assert w.totals(100.0)[0] == 2


def test_add_many_counts_each_column_once() -> None:
    w = TimeBuckets(window_seconds=10, n_buckets=1, width=3)
    w.add_many(1.0, [0, 2])
    assert w.totals(1.0).tolist() == [1.0, 0.0, 1.0]
    w.clear()
    assert w.totals(1.0).sum() == 0


def test_invalid_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        TimeBuckets(window_seconds=0, n_buckets=1, width=1)
