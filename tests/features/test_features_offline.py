"""Offline replay: shape of the result, time conversion, lateness, training sets, and
parity with the online engine on large-magnitude values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from feature_streams import HUGE, frame_of, mismatches, never_wrong_mismatches
from hypothesis import given, settings
from hypothesis import strategies as st

from features import FeatureEngine, FeatureSet, compute_features, to_epoch_ms, training_set
from features.reference import reference_features
from tests.support import max_examples

FS = FeatureSet(features=[
    {"name": "n_10s", "agg": "count", "window": {"kind": "sliding", "size": "10s"}},
    {"name": "x_sum_10s", "agg": "sum", "field": "x", "window": {"kind": "sliding", "size": "10s"}},
    {"name": "x_var_day", "agg": "variance", "field": "x",
     "window": {"kind": "tumbling", "size": "1d"}},
    {"name": "x_std_10s", "agg": "stddev", "field": "x",
     "window": {"kind": "hopping", "size": "10s", "hop": "5s"}},
    {"name": "x_mean", "agg": "mean", "field": "x"},
    {"name": "kind_last", "agg": "last", "field": "kind"},
    {"name": "kinds", "agg": "count_distinct", "field": "kind"},
])


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity_id": ["a", "b", "a", "a", "b"],
            "ts": [1_000, 2_000, 11_000, 5_000, 2_000],
            "x": [1.0, 2.0, np.nan, 4.0, 6.0],
            "kind": ["p", "q", None, "r", "q"],
        },
        index=[10, 20, 30, 40, 50],
    )


def test_result_keeps_the_index_and_feature_order_with_counts_as_int64():
    out = compute_features(_events(), FS)
    assert list(out.index) == [10, 20, 30, 40, 50]
    assert list(out.columns) == FS.names
    assert out["n_10s"].dtype == np.int64 and out["kinds"].dtype == np.int64
    assert out["x_sum_10s"].dtype == np.float64
    assert out["kind_last"].tolist() == ["p", "q", "p", "r", "q"]
    assert out.loc[20, "x_var_day"] != out.loc[20, "x_var_day"]  # one value: NaN, never 0


def test_event_time_order_is_arrival_order_after_a_stable_sort_by_time():
    events = _events()
    by_time = compute_features(events, FS, order="event-time")
    sorted_events = events.sort_values("ts", kind="stable")
    assert by_time.loc[sorted_events.index].equals(compute_features(sorted_events, FS))


def test_late_events_are_left_out_of_state_and_result_with_allowed_lateness():
    events = _events()  # a: 1s, 11s, then 5s: 6 s behind its entity's watermark
    out = compute_features(events, FS, allowed_lateness_ms=5_000)
    assert list(out.index) == [10, 20, 30, 50]
    kept = compute_features(events.drop(index=40), FS)
    assert out.equals(kept)
    within = compute_features(events, FS, allowed_lateness_ms=6_000)
    assert list(within.index) == [10, 20, 30, 40, 50]
    assert within.loc[40, "n_10s"] == 2  # as of 5 s: the events at 1 s and 5 s


def test_late_rule_can_follow_partitions_instead_of_entities():
    events = _events().assign(partition=0)
    out = compute_features(events, FS, allowed_lateness_ms=5_000, partition_col="partition")
    # One partition: b's second event at 2 s is 9 s behind the partition's 11 s, late too.
    assert list(out.index) == [10, 20, 30]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_to_epoch_ms_handles_every_datetime_unit(unit):
    times = pd.Series(pd.to_datetime(["1970-01-01T00:00:01", "2024-02-29T12:00:00"]))
    assert to_epoch_ms(times.dt.as_unit(unit)).tolist() == [1_000, 1_709_208_000_000]


def test_to_epoch_ms_treats_naive_as_utc_and_converts_aware_times():
    naive = pd.Series(pd.to_datetime(["2024-01-01 00:00"]))
    aware = naive.dt.tz_localize("America/New_York")
    assert to_epoch_ms(naive).tolist() == [1_704_067_200_000]
    assert to_epoch_ms(aware).tolist() == [1_704_067_200_000 + 5 * 3_600_000]
    assert to_epoch_ms(pd.Series(["2024-01-01T00:00:00Z"])).tolist() == [1_704_067_200_000]
    assert to_epoch_ms(pd.Series([5, 6])).tolist() == [5, 6]


@pytest.mark.parametrize("bad", [["2024-01-01", "soon"], [1.5], [None, 3]])
def test_to_epoch_ms_names_the_column_on_bad_values(bad):
    with pytest.raises(ValueError, match="'when'"):
        to_epoch_ms(pd.Series(bad, name="when"))


def test_compute_features_accepts_datetime_columns():
    events = _events().assign(ts=pd.to_datetime(_events()["ts"], unit="ms").dt.as_unit("s"))
    with_ints = _events().assign(ts=(_events()["ts"] // 1000) * 1000)
    assert compute_features(events, FS).equals(compute_features(with_ints, FS))


def test_numeric_aggregation_of_a_text_column_names_the_feature():
    events = _events().assign(x=["1", "b", "c", "d", "e"])
    with pytest.raises(ValueError, match="'x_sum_10s'"):
        compute_features(events, FS)


def test_training_set_is_point_in_time_and_the_first_label_wins():
    events = _events().assign(event_id=["e1", "e2", "e3", "e4", "e5"], group=list("GGHHG"))
    labels = pd.DataFrame({"event_id": ["e4", "e1", "e4", "zz"], "label": [1, 0, 0, 1]})
    out = training_set(events, labels, FS)
    assert list(out.columns[:4]) == ["event_id", "entity_id", "ts", "group"]
    assert list(out.columns[4:]) == [*FS.names, "label"]
    assert out["event_id"].tolist() == ["e1", "e4"] and out["label"].tolist() == [0, 1]
    features = compute_features(events, FS)
    assert out[FS.names].reset_index(drop=True).equals(
        features.loc[[10, 40]].reset_index(drop=True))


big = st.one_of(
    st.floats(1e9, 1e12, allow_nan=False),
    st.floats(-1e12, 1e12, allow_nan=False, allow_subnormal=False),
    st.integers(-(10**12), 10**12).map(float),
    st.sampled_from([1e12, 1e12 + 1, 1e12 + 0.5, 0.001]),
)
MOMENTS = FeatureSet(features=[
    {"name": f"{agg}_{k}", "agg": agg, "field": "x", "window": window}
    for agg in ("sum", "mean", "variance", "stddev")
    for k, window in {
        "slide": {"kind": "sliding", "size": "5ms"},
        "tumble": {"kind": "tumbling", "size": "8ms"},
        "hop": {"kind": "hopping", "size": "6ms", "hop": "2ms"},
        "life": {"kind": "lifetime"},
    }.items()
])


def _online_equals_offline(steps: list[tuple[int, str, float]]
                           ) -> tuple[list[tuple[str, int, dict]], list[dict]]:
    """Events ``steps`` apart (time step, entity, x); asserts that the engine and the
    offline replay give the same value (null where the engine gives None) for every moment
    feature; returns the events and the engine's values."""
    t, events = 0, []
    for dt, entity, x in steps:
        t += dt
        events.append((entity, t, {"x": x}))
    engine = FeatureEngine(MOMENTS, 0)
    states: dict[str, object] = {}
    online = [engine.apply(states.setdefault(e, engine.new_state()), ts, a) for e, ts, a in events]
    offline = compute_features(frame_of(events), MOMENTS).astype(object).to_dict("records")
    for got, want in zip(offline, online, strict=True):
        for name in MOMENTS.names:
            g, w = got[name], want[name]
            assert (w is None and g != g) or g == w, (name, g, w)
    return events, online


@settings(max_examples=max_examples(60), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from("ab"), big), min_size=1,
                max_size=60))
def test_large_magnitude_values_give_identical_online_and_offline_results(steps):
    events, online = _online_equals_offline(steps)
    assert not mismatches(online, reference_features(events, MOMENTS), MOMENTS, events)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from("ab"),
                          st.one_of(big, st.sampled_from(HUGE))), min_size=1, max_size=40))
def test_huge_values_give_identical_nulls_online_and_offline(steps):
    events, online = _online_equals_offline(steps)
    reference = reference_features(events, MOMENTS)
    assert not never_wrong_mismatches(online, reference, MOMENTS, events)


def test_an_overflowed_sum_is_null_until_its_window_empties():
    fs = FeatureSet(features=[
        {"name": "s", "agg": "sum", "field": "x", "window": {"kind": "sliding", "size": "10ms"}},
        {"name": "life", "agg": "sum", "field": "x"},
        {"name": "hi", "agg": "max", "field": "x", "window": {"kind": "sliding", "size": "10ms"}},
        {"name": "v", "agg": "variance", "field": "x",
         "window": {"kind": "sliding", "size": "10ms"}},
    ])
    rows = [(0, 1e308), (1, 1e308), (10, 1.0), (12, 1.0), (30, 2.0), (31, 4.0)]
    events = [("e", t, {"x": x}) for t, x in rows]
    engine = FeatureEngine(fs, 0)
    state = engine.new_state()
    online = [engine.apply(state, t, a) for _, t, a in events]
    # At 10 and 12 ms the exact sums (1e308 + 1, then 2) are finite, but the running
    # total overflowed at 1 ms and the window has not been empty since; at 30 ms it has.
    assert [r["s"] for r in online] == [1e308, None, None, None, 2.0, 6.0]
    assert [r["life"] for r in online] == [1e308, None, None, None, None, None]
    assert [r["hi"] for r in online] == [1e308, 1e308, 1e308, 1.0, 2.0, 4.0]
    assert [r["v"] for r in online] == [None, 0.0, None, None, None, 1.0]
    offline = compute_features(frame_of(events), fs).astype(object).to_dict("records")
    assert not mismatches(offline, online, fs)
