"""A brute-force reference, obviously correct and slow; only tests use it.

For each event, in arrival order, every feature is recomputed from scratch by scanning
the entity's events applied so far: no state, no incremental tricks, exact arithmetic
(``fractions.Fraction``) for the sums and moments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from features.aggregations import AGGREGATIONS
from features.predicates import is_null, matches
from features.spec import Feature, FeatureSet
from features.windows import window_of


def _value(feature: Feature, ts: int, attrs: Mapping[str, Any]) -> Any:
    """What the event gives the aggregation, as its ``reads`` declares (None: nothing)."""
    reads = AGGREGATIONS[feature.agg].reads
    if reads == "event":
        return True
    if reads == "time":
        return ts
    assert feature.field is not None
    v = attrs.get(feature.field)
    if is_null(v):
        return None
    if reads == "number" or (reads == "value" and isinstance(v, int | float)):
        return float(v)
    return v


def _aggregate(feature: Feature, t: int, covered: list[tuple[int, int, Mapping[str, Any]]]) -> Any:
    """``covered``: (ts, arrival, attrs) of the matching events in the window, ts <= t.

    Each aggregation's brute-force definition is its ``exact`` (exact arithmetic with
    ``fractions.Fraction`` for sums and moments); a value that is not a finite float is
    null, as in both engines.
    """
    ordered = sorted(covered, key=lambda c: (c[0], c[1]))
    values = [v for ts, _, attrs in ordered if (v := _value(feature, ts, attrs)) is not None]
    value = AGGREGATIONS[feature.agg].exact(values, t)
    return None if isinstance(value, float) and not math.isfinite(value) else value


def reference_features(
    events: Sequence[tuple[Any, int, Mapping[str, Any]]], feature_set: FeatureSet
) -> list[dict[str, Any]]:
    """``events``: ``(entity, ts_ms, attrs)`` in arrival order → one feature dict per event."""
    out = []
    for i, (entity, t, _) in enumerate(events):
        applied = [(ts, j, a) for j, (e, ts, a) in enumerate(events[: i + 1]) if e == entity]
        row = {}
        for feature in feature_set.features:
            window = window_of(feature.window)
            covered = [
                (ts, j, a)
                for ts, j, a in applied
                if window.covers(ts, as_of=t)
                and matches(feature.filters, a)
                and not (feature.agg == "seconds_since_previous" and j == i)
            ]
            row[feature.name] = _aggregate(feature, t, covered)
        out.append(row)
    return out
