"""Hypothesis strategies and comparison helpers shared by the feature property tests."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from hypothesis import strategies as st

from features import FeatureSet, Watermark

WINDOWS: dict[str, dict[str, Any]] = {
    "life": {"kind": "lifetime"},
    "slide": {"kind": "sliding", "size": "10ms"},
    "tumble": {"kind": "tumbling", "size": "10ms"},
    "hop": {"kind": "hopping", "size": "12ms", "hop": "4ms"},
}
FIELD_OF = {
    "count": None,
    "seconds_since_previous": None,
    "count_distinct": "kind",
}
FILTERS: dict[str, Any] = {
    "all": None,
    "a": {"field": "kind", "op": "eq", "value": "a"},
    "pos": [{"field": "x", "op": "gt", "value": 0}, {"field": "kind", "op": "not_null"}],
}
AGGS = [
    "count", "sum", "mean", "min", "max", "variance", "stddev",
    "first", "last", "count_distinct", "seconds_since_previous",
]
LATENESS_MS = 6


def every_feature() -> FeatureSet:
    """Every window kind × every aggregation × (no filter, two filters), plus first/last
    of a string field."""
    features = []
    for wname, window in WINDOWS.items():
        for agg in AGGS:
            for fname, where in FILTERS.items():
                features.append({
                    "name": f"{agg}_{wname}_{fname}",
                    "agg": agg,
                    "field": FIELD_OF.get(agg, "x"),
                    "window": window,
                    "where": where,
                })
        for agg in ("first", "last", "count_distinct"):
            features.append({"name": f"{agg}_{wname}_str", "agg": agg, "field": "kind",
                             "window": window})
        features.append({"name": f"count_distinct_{wname}_x", "agg": "count_distinct",
                         "field": "x", "window": window})
    return FeatureSet(features=features)


# Times near the edges of 10 ms tumbling/sliding and 4 ms hops.
EDGE_TIMES = [0, 1, 3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 19, 20, 21, 24, 29, 30, 31, 40]
values = st.one_of(
    st.none(),
    st.just(math.nan),
    st.integers(-3, 3).map(float),
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
    st.sampled_from([1e12, -1e12, 1e12 + 1.0, 0.1, 0.2, -0.3, 123456.789]),
)
#: Values near the ends of the float range: sums overflow, squares overflow.
HUGE = [1e308, -1e308, 1.7976931348623157e308, -1.7976931348623157e308, 1e200, -1e160]
huge_values = st.one_of(values, st.sampled_from(HUGE), st.sampled_from([math.inf, -math.inf]))


@st.composite
def event_streams(
    draw: st.DrawFn, max_events: int = 30, xs: st.SearchStrategy = values
) -> list[tuple[str, int, dict]]:
    """(entity, ts_ms, attrs) in arrival order; per entity never later than the lateness
    allows, with ties, edge times and out-of-order arrivals; ``x`` drawn from ``xs``."""
    n = draw(st.integers(1, max_events))
    events = []
    clock = draw(st.sampled_from(EDGE_TIMES))
    marks: dict[str, Watermark] = {}
    for _ in range(n):
        clock += draw(st.sampled_from([0, 0, 1, 1, 2, 3, 4, 5, 10]))
        ts = max(0, clock - draw(st.sampled_from([0, 0, 0, 1, 3, LATENESS_MS, 9])))
        entity = draw(st.sampled_from(["e1", "e2", "e3"]))
        mark = marks.setdefault(entity, Watermark(LATENESS_MS))
        if not mark.observe(ts):
            continue
        attrs = {"x": draw(xs), "kind": draw(st.sampled_from(["a", "b", None]))}
        events.append((entity, ts, attrs))
    return events


def frame_of(events: Sequence[tuple[str, int, Mapping[str, Any]]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"entity_id": e, "ts": ts, **attrs} for e, ts, attrs in events],
        columns=["entity_id", "ts", "x", "kind"],
    )


def _null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def same_value(a: Any, b: Any, abs_tol: float = 0.0) -> bool:
    if _null(a) or _null(b):
        return _null(a) and _null(b)
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol)


def error_floor(agg: str, history: Sequence[Any]) -> float:
    """How far compensated (double-double) arithmetic may sit from exact arithmetic.

    The error is about eps**2 (1.2e-32) times the magnitudes summed since the aggregation
    last restarted; 1e-25 * n * max|x| (squared for variance) bounds that generously.
    It only matters when a result cancels to ~1e-23 of values seen (say 1e12 and 1e-12).
    """
    xs = [abs(float(x)) for x in history if not _null(x) and not isinstance(x, str)]
    big = max(xs, default=0.0)
    if agg in ("sum", "mean"):
        return 1e-25 * len(xs) * big
    if agg == "variance":
        return 1e-25 * len(xs) * big * big
    if agg == "stddev":
        return math.sqrt(1e-25 * len(xs)) * big
    return 0.0


def mismatches(
    got: Sequence[Mapping[str, Any]],
    want: Sequence[Mapping[str, Any]],
    feature_set: FeatureSet,
    events: Sequence[tuple[str, int, Mapping[str, Any]]] | None = None,
) -> list[str]:
    """Describe rows where ``got`` differs from ``want`` (tolerances as :func:`error_floor`
    when ``events`` is given, else strictly 1e-9 relative)."""
    problems = []
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for f in feature_set.features:
            tol = 0.0
            if events is not None and f.field:
                history = [a.get(f.field) for e, _, a in events[: i + 1] if e == events[i][0]]
                tol = error_floor(f.agg, history)
            if not same_value(g[f.name], w[f.name], tol):
                problems.append(f"row {i} {f.name}: got {g[f.name]!r}, want {w[f.name]!r}")
    return problems


#: Beyond this magnitude the double-double sums and squares may overflow.
OVERFLOW_RANGE = 1e150
_ACCUMULATED = ("sum", "mean", "variance", "stddev")


def never_wrong_mismatches(
    got: Sequence[Mapping[str, Any]],
    want: Sequence[Mapping[str, Any]],
    feature_set: FeatureSet,
    events: Sequence[tuple[str, int, Mapping[str, Any]]],
) -> list[str]:
    """As :func:`mismatches` against the exact reference, except that a sum, mean,
    variance or stddev may be null where the exact value is finite once the entity has
    seen a value beyond :data:`OVERFLOW_RANGE` (its accumulators overflowed: null until
    the window empties). Nothing may ever be inf or NaN."""
    problems = []
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        seen = [a.get("x") for e, _, a in events[: i + 1] if e == events[i][0]]
        beyond = any(isinstance(x, float) and abs(x) > OVERFLOW_RANGE for x in seen)
        for f in feature_set.features:
            v = g[f.name]
            if isinstance(v, float) and not math.isfinite(v):
                problems.append(f"row {i} {f.name}: {v!r} is not null")
            elif v is None and w[f.name] is not None and beyond and f.agg in _ACCUMULATED:
                continue
            tol = error_floor(f.agg, seen) if f.field == "x" else 0.0
            if not same_value(v, w[f.name], tol):
                problems.append(f"row {i} {f.name}: got {v!r}, want {w[f.name]!r}")
    return problems
