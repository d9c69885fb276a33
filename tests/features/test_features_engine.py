"""The online engine: the lateness contract, exact out-of-order events, state left
untouched by an event it refuses, and state that encodes and stays bounded."""

from __future__ import annotations

import pytest

from features import FeatureEngine, FeatureSet, LateEventError
from features.reference import reference_features

FS = FeatureSet(features=[
    {"name": "n_10s", "agg": "count", "window": {"kind": "sliding", "size": "10s"}},
    {"name": "sum_day", "agg": "sum", "field": "x", "window": {"kind": "tumbling", "size": "1d"}},
    {"name": "max_6h", "agg": "max", "field": "x",
     "window": {"kind": "hopping", "size": "6h", "hop": "1h"}},
    {"name": "first_ever", "agg": "first", "field": "x"},
    {"name": "distinct_ever", "agg": "count_distinct", "field": "x"},
    {"name": "gap", "agg": "seconds_since_previous"},
])


def test_event_older_than_allowed_lateness_raises_and_leaves_state_unchanged():
    engine = FeatureEngine(FS, allowed_lateness_ms=1_000)
    state = engine.new_state()
    engine.apply(state, 10_000, {"x": 1})
    before = engine.encode_state(state)
    with pytest.raises(LateEventError, match="allowed lateness"):
        engine.apply(state, 8_999, {"x": 2})
    assert engine.encode_state(state) == before
    engine.apply(state, 9_000, {"x": 3})  # exactly max - lateness: accepted


@pytest.mark.parametrize("ts", [10_000, 9_500, 12_000])  # the latest, late, in order
def test_a_non_number_for_a_numeric_feature_raises_and_leaves_state_unchanged(ts):
    engine = FeatureEngine(FS, allowed_lateness_ms=1_000)
    state = engine.new_state()
    engine.apply(state, 10_000, {"x": 1})
    before = engine.encode_state(state)
    with pytest.raises(ValueError, match="'sum_day'"):
        engine.apply(state, ts, {"x": "abc"})
    assert engine.encode_state(state) == before
    assert engine.apply(state, ts, {"x": 2})["n_10s"] == (2 if ts >= 10_000 else 1)


def test_out_of_order_events_within_lateness_are_exact():
    engine = FeatureEngine(FS, allowed_lateness_ms=60_000)
    state = engine.new_state()
    events = [("e", t, {"x": x}) for t, x in
              [(50_000, 5), (20_000, 2), (55_000, 1), (20_000, 7), (45_000, 9), (56_000, 2)]]
    got = [engine.apply(state, t, a) for _, t, a in events]
    assert got == reference_features(events, FS)


def test_state_encodes_and_stays_bounded_over_a_long_stream():
    engine = FeatureEngine(FS, allowed_lateness_ms=5_000)
    state = engine.new_state()
    for i in range(20_000):  # an event every 5 s for 28 h, every 7th 3 s late
        t = i * 5_000
        engine.apply(state, t - (3_000 if i % 7 == 0 else 0), {"x": i % 5})
        if i % 5_000 == 0:
            state = engine.decode_state(engine.encode_state(state))
    sizes = {engine.plans[i].name: len(state.buffers[g]) for i, (g, _) in
             ((i, at) for i, at in enumerate(engine.group_of) if at)}
    # A buffer holds its window plus the lateness, cut in batches of an eighth: the 10 s
    # sliding count about 3 events, the 6 h hopping max up to 6 h of them. Tumbling and
    # lifetime windows keep only the lateness (about 1 event) and settle the rest.
    assert sizes["n_10s"] <= 3 + 64
    assert sizes["max_6h"] <= 9 / 8 * (5_000 + 6 * 3_600_000) / 5_000 + 2
    assert sizes["sum_day"] <= 2 + 64 and sizes["first_ever"] <= 2 + 64
    assert engine.encoded_size(state) < 80_000


def test_without_lateness_lifetime_and_tumbling_features_buffer_nothing():
    engine = FeatureEngine(FS, allowed_lateness_ms=0)
    state = engine.new_state()
    for t in range(100):
        engine.apply(state, t, {"x": t})
    buffered = [p.name for p, at in zip(engine.plans, engine.group_of, strict=True) if at]
    assert buffered == ["n_10s", "max_6h"]  # the sliding and the hopping window
    with pytest.raises(LateEventError):
        engine.apply(state, 98, {"x": 0})


def test_features_come_back_in_feature_set_order():
    engine = FeatureEngine(FS, 0)
    assert list(engine.apply(engine.new_state(), 1, {"x": 1})) == FS.names


def test_numeric_aggregation_of_text_names_the_feature():
    engine = FeatureEngine(FS, 0)
    with pytest.raises(ValueError, match=r"'sum_day'.*'x'"):
        engine.apply(engine.new_state(), 1, {"x": "abc"})


def test_worked_example_in_the_docs():
    aggs = ["count", "sum", "mean", "min", "variance", "first", "last", "count_distinct"]
    window = {"kind": "sliding", "size": "10s"}
    fs = FeatureSet(features=[
        *({"name": a, "agg": a, "field": None if a == "count" else "x", "window": window}
          for a in aggs),
        {"name": "gap", "agg": "seconds_since_previous", "window": window},
    ])
    engine = FeatureEngine(fs, 0)
    state = engine.new_state()
    rows = [list(engine.apply(state, t, {"x": x}).values())
            for t, x in [(0, 4), (5_000, None), (5_000, 2), (10_000, 2)]]
    assert rows == [
        [1, 4.0, 4.0, 4.0, None, 4.0, 4.0, 1, None],
        [2, 4.0, 4.0, 4.0, None, 4.0, 4.0, 1, 5.0],
        [3, 6.0, 3.0, 2.0, 1.0, 4.0, 2.0, 2, 0.0],
        [3, 4.0, 2.0, 2.0, 0.0, 2.0, 2.0, 1, 5.0],
    ]
