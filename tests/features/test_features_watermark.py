"""Watermarks: late events are rejected and never advance the watermark."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features import Watermark, late_mask


def test_late_event_is_rejected_and_does_not_move_the_watermark():
    wm = Watermark(allowed_lateness_ms=10)
    assert wm.observe(100)
    assert not wm.observe(89)
    assert wm.watermark_ms == 100
    assert wm.observe(90)  # exactly watermark - lateness: on time
    assert wm.watermark_ms == 100


def test_zero_lateness_accepts_equal_times_only():
    wm = Watermark(0)
    assert [wm.observe(t) for t in (5, 5, 4, 6)] == [True, True, False, True]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 100)), max_size=40),
    st.integers(0, 20),
    st.booleans(),
)
def test_late_mask_equals_a_watermark_per_partition_in_arrival_order(events, lateness, split):
    marks: dict[int, Watermark] = {}
    expected = []
    for partition, ts in events:
        key = partition if split else 0
        expected.append(not marks.setdefault(key, Watermark(lateness)).observe(ts))
    ts = np.array([t for _, t in events], dtype=np.int64)
    partitions = np.array([p for p, _ in events]) if split else None
    assert late_mask(ts, partitions, lateness).tolist() == expected
