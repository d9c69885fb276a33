"""``where`` filters: one rule, evaluated per event and vectorised over a DataFrame."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features import FeatureEngine, FeatureSet, Where
from features.predicates import mask, matches
from tests.support import max_examples


def test_comparisons_with_null_are_false_even_ne_and_not_in():
    for op, value in [("eq", 1), ("ne", 1), ("lt", 1), ("in", [1]), ("not_in", [1])]:
        clause = (Where(field="x", op=op, value=value),)
        assert not matches(clause, {"x": None})
        assert not matches(clause, {"x": math.nan})
        assert not matches(clause, {})
        assert not mask(clause, pd.DataFrame({"x": [None, math.nan]})).any()


def test_is_null_and_not_null_test_for_missing_values():
    assert matches((Where(field="x", op="is_null"),), {})
    assert matches((Where(field="x", op="not_null"),), {"x": 0})
    frame = pd.DataFrame({"y": [1, 2]})
    assert mask((Where(field="x", op="is_null"),), frame).all()


def test_comparing_incomparable_types_is_false_not_an_error():
    clause = (Where(field="x", op="lt", value=3),)
    assert not matches(clause, {"x": "abc"})
    assert mask(clause, pd.DataFrame({"x": ["abc", 1]})).tolist() == [False, True]


def test_every_clause_must_hold():
    clauses = (Where(field="x", op="ge", value=1), Where(field="k", op="in", value=["a", "b"]))
    frame = pd.DataFrame({"x": [1, 0, 5], "k": ["a", "a", "c"]})
    assert mask(clauses, frame).tolist() == [True, False, False]


def test_filtered_feature_is_reported_for_every_event_with_matching_events_only():
    fs = FeatureSet(features=[{
        "name": "big_n", "agg": "count",
        "where": {"field": "amount", "op": "gt", "value": 100},
    }])
    engine = FeatureEngine(fs, 0)
    state = engine.new_state()
    got = [engine.apply(state, t, {"amount": a})["big_n"] for t, a in [(1, 500), (2, 5), (3, 200)]]
    assert got == [1, 1, 2]


cells = st.one_of(
    st.none(), st.just(math.nan), st.integers(-3, 3), st.floats(-3, 3, allow_nan=False),
    st.sampled_from(["a", "b", True, False]),
)
scalars = st.one_of(
    st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.sampled_from(["a", True])
)


@st.composite
def clauses(draw: st.DrawFn) -> Where:
    op = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null",
                               "not_null"]))
    if op in ("is_null", "not_null"):
        return Where(field="x", op=op)
    if op in ("in", "not_in"):
        return Where(field="x", op=op, value=draw(st.lists(scalars, min_size=1, max_size=3)))
    return Where(field="x", op=op, value=draw(scalars))


@settings(max_examples=max_examples(300), deadline=None)
@given(st.one_of(st.lists(cells, max_size=8),
                 st.lists(st.one_of(st.none(), st.floats(-3, 3)), max_size=8),
                 st.lists(st.integers(-3, 3), max_size=8)),
       clauses())
def test_vectorised_mask_agrees_with_the_per_event_rule(column, clause):
    frame = pd.DataFrame({"x": pd.Series(column, dtype=None if column else float)})
    expected = [matches((clause,), row) for row in frame.to_dict("records")]
    assert mask((clause,), frame).tolist() == expected
