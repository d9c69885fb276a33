"""Property tests: online engine == brute-force reference == offline replay.

Random streams over a few entities, with timestamps on and next to window edges, equal
timestamps, null values and out-of-order arrivals within the allowed lateness, for every
window kind × every aggregation, with and without ``where`` filters.
"""

from __future__ import annotations

import pandas as pd
from feature_streams import (
    LATENESS_MS,
    event_streams,
    every_feature,
    frame_of,
    huge_values,
    mismatches,
    never_wrong_mismatches,
)
from hypothesis import HealthCheck, given, settings

from features import FeatureEngine, compute_features
from features.reference import reference_features
from tests.support import max_examples

FEATURES = every_feature()


def _online(events, lateness_ms=LATENESS_MS):
    engine = FeatureEngine(FEATURES, lateness_ms)
    states = {}
    out = []
    for entity, ts, attrs in events:
        state = states.setdefault(entity, engine.new_state())
        out.append(engine.apply(state, ts, attrs))
        states[entity] = engine.decode_state(engine.encode_state(state))  # as the worker's table
    return out


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).to_dict("records")


@settings(max_examples=max_examples(70), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(event_streams())
def test_online_offline_and_reference_agree_in_arrival_and_event_time_order(events):
    online = _online(events)
    assert not mismatches(online, reference_features(events, FEATURES), FEATURES, events)

    offline = compute_features(frame_of(events), FEATURES, order="arrival")
    assert list(offline.columns) == FEATURES.names
    assert not mismatches(_records(offline), online, FEATURES)

    by_time = sorted(events, key=lambda e: e[1])
    replayed = compute_features(frame_of(events), FEATURES, order="event-time")
    expected = reference_features(by_time, FEATURES)
    position = sorted(range(len(events)), key=lambda i: events[i][1])
    in_time_order = _records(replayed.iloc[position])
    assert not mismatches(in_time_order, expected, FEATURES, by_time)


@settings(max_examples=max_examples(60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(xs=huge_values))
def test_huge_values_are_null_never_inf_and_online_equals_offline(events):
    """±1e308 and ±inf: a value that is not finite is null in both engines, the same rows,
    and otherwise exactly the reference (see ``never_wrong_mismatches``)."""
    online = _online(events)
    assert not never_wrong_mismatches(online, reference_features(events, FEATURES), FEATURES,
                                      events)
    offline = compute_features(frame_of(events), FEATURES, order="arrival")
    assert not mismatches(_records(offline), online, FEATURES)
