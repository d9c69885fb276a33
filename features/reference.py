"""A brute-force reference, obviously correct and slow; only tests use it.

For each event, in arrival order, every feature is recomputed from scratch by scanning
the entity's events applied so far: no state, no incremental tricks, exact arithmetic
(``fractions.Fraction``) for the sums and moments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from features.predicates import is_null, matches
from features.spec import NUMERIC, Feature, FeatureSet
from features.windows import window_of


def _value(feature: Feature, attrs: Mapping[str, Any]) -> Any:
    assert feature.field is not None
    v = attrs.get(feature.field)
    if is_null(v):
        return None
    if feature.agg in NUMERIC or (feature.agg in ("first", "last") and isinstance(v, int | float)):
        return float(v)
    return v


def _aggregate(feature: Feature, t: int, covered: list[tuple[int, int, Mapping[str, Any]]]) -> Any:
    """``covered``: (ts, arrival, attrs) of the matching events in the window, ts <= t."""
    if feature.agg == "count":
        return len(covered)
    if feature.agg == "seconds_since_previous":
        return (t - max(c[0] for c in covered)) / 1000 if covered else None
    ordered = sorted(covered, key=lambda c: (c[0], c[1]))
    values = [v for c in ordered if (v := _value(feature, c[2])) is not None]
    if feature.agg == "count_distinct":
        return len(set(values))
    if not values:
        return None
    exact = [Fraction(v) for v in values] if feature.agg in NUMERIC else []
    n = len(values)
    match feature.agg:
        case "sum":
            return float(sum(exact))
        case "mean":
            return float(sum(exact) / n)
        case "min":
            return min(values)
        case "max":
            return max(values)
        case "first":
            return values[0]
        case "last":
            return values[-1]
        case "variance" | "stddev":
            if n < 2:
                return None
            mean = sum(exact) / n
            var = sum((v - mean) ** 2 for v in exact) / n
            return float(var) if feature.agg == "variance" else math.sqrt(var)
    raise AssertionError(feature.agg)


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
