"""Window semantics: (start, t], epoch-aligned, an event on a boundary ends a window."""

from __future__ import annotations

from fractions import Fraction
from math import ceil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import FeatureEngine, FeatureSet
from features.windows import Hopping, Lifetime, Sliding, Tumbling


def _count(window: dict, times: list[int]) -> list[int]:
    fs = FeatureSet(features=[{"name": "n", "agg": "count", "window": window}])
    engine = FeatureEngine(fs, allowed_lateness_ms=0)
    state = engine.new_state()
    return [engine.apply(state, t, {})["n"] for t in times]


def test_event_on_window_boundary_counts_in_ending_window():
    # 10 s tumbling: (0, 10s] then (10s, 20s]; the event at exactly 10 s ends the first.
    assert _count({"kind": "tumbling", "size": "10s"}, [1, 10_000, 10_001]) == [1, 2, 1]


def test_tumbling_window_at_time_zero_is_the_one_ending_at_zero():
    assert Tumbling(10).start_excl(0) == -10
    assert _count({"kind": "tumbling", "size": "10ms"}, [0, 1]) == [1, 1]


def test_sliding_window_excludes_its_start_and_includes_t():
    assert _count({"kind": "sliding", "size": "10ms"}, [0, 10, 10, 20]) == [1, 1, 2, 1]


def test_hopping_window_is_current_partial_hop_plus_previous_complete_hops():
    # size 12 ms, hop 4 ms: as of t=13 the window is (16 - 12, 13] = (4, 13].
    assert Hopping(12, 4).start_excl(13) == 4
    assert _count({"kind": "hopping", "size": "12ms", "hop": "4ms"}, [4, 5, 13]) == [1, 2, 2]


def test_lifetime_window_covers_everything_up_to_t():
    assert _count({"kind": "lifetime"}, [0, 5, 10**12]) == [1, 2, 3]
    assert Lifetime().start_excl(123) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-(10**13), 10**13), min_size=1, max_size=20),
    st.integers(1, 10**8),
    st.integers(1, 12),
)
def test_window_starts_match_their_definitions_for_any_time(times, hop, hops):
    size = hop * hops
    ts = np.array(times, dtype=np.int64)
    for window, definition in [
        (Tumbling(size), lambda t: (ceil(Fraction(t, size)) - 1) * size),
        (Hopping(size, hop), lambda t: ceil(Fraction(t, hop)) * hop - size),
        (Sliding(size), lambda t: t - size),
    ]:
        expected = [definition(t) for t in times]
        assert [window.start_excl(t) for t in times] == expected
        assert window.start_excl_array(ts).tolist() == expected


@pytest.mark.parametrize("size", [1, 7, 86_400_000])
def test_tumbling_windows_partition_time(size):
    # Every time is in exactly one tumbling window: the one whose end is ceil(t/size)*size.
    for t in range(-2 * size, 2 * size + 1, max(1, size // 3)):
        start = Tumbling(size).start_excl(t)
        assert start < t <= start + size
        assert start % size == 0
