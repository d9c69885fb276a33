"""The version's drift reference: fixed size, a round-tripping encoding, the fallback rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitors.bins import Binning
from monitors.reference import ReferenceSample
from monitors.sketch import (
    DriftReference,
    VariableSketch,
    impact_sketches,
    max_encoded_bytes,
    reference_at_cut,
)

numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False, width=64))
categories = st.one_of(st.none(), st.text(max_size=80))


@settings(max_examples=150, deadline=None)
@given(st.lists(numbers, max_size=300), st.sampled_from([2, 10, 100]))
def test_numeric_sketches_round_trip_through_json(values: list, ks_bins: int) -> None:
    sketch = VariableSketch.from_values(values, ks_bins=ks_bins)
    again = VariableSketch.from_json(json.loads(json.dumps(sketch.to_json())))
    assert again == sketch
    assert sketch.size == len(values)
    assert len(sketch.quantiles) in (0, ks_bins - 1)


@settings(max_examples=150, deadline=None)
@given(st.lists(categories, max_size=300), st.integers(1, 30))
def test_categorical_sketches_round_trip_and_keep_their_size(values: list, kept: int) -> None:
    values = [*values, "x"]  # at least one string: categorical
    sketch = VariableSketch.from_values(values, max_categories=kept)
    assert VariableSketch.from_json(json.loads(json.dumps(sketch.to_json()))) == sketch
    assert len(sketch.categories) <= kept and sketch.size == len(values)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20),
                       st.one_of(st.lists(numbers, min_size=5, max_size=5),
                                 st.lists(categories, min_size=5, max_size=5)),
                       max_size=6),
       st.lists(st.floats(0, 1), min_size=5, max_size=5))
def test_a_drift_reference_round_trips(columns: dict, scores: list) -> None:
    reference = DriftReference.from_columns(columns, scores, ks_bins=10)
    assert DriftReference.from_json(json.loads(reference.encode())) == reference


def test_the_encoding_stays_under_its_bound_at_the_largest_configuration() -> None:
    """Every variable at its worst: 1,000 fine bins of 17-digit floats, or 1,000
    categories of 64 non-ASCII characters; 20,000 examples."""
    rng = np.random.default_rng(0)
    n = 20_000
    names = [f"feature_{i:02d}" for i in range(12)]
    columns: dict[str, list] = {}
    for i, name in enumerate(names):
        if i % 2:
            columns[name] = (-rng.random(n) * 1e-300).tolist()
        else:
            columns[name] = [f"{'é' * 63}{j % 1500:04d}"[-64:] for j in range(n)]
    reference = DriftReference.from_columns(columns, rng.random(n).tolist(), ks_bins=1000,
                                            max_categories=1000)
    groups = {f"attribute_{a}": [f"{'ü' * 90}{j % 100:03d}" for j in range(n)]
              for a in range(3)}
    impact = impact_sketches(groups, (rng.random(n) < 0.5).tolist())
    reference = DriftReference(reference.examples, reference.features, reference.score, impact)
    bound = max_encoded_bytes(names, ks_bins=1000, max_categories=1000, max_examples=n,
                              impact_keys=list(impact))
    assert len(impact) == 300 and len(reference.encode()) <= bound


def test_quickstart_reference_size() -> None:
    """The figures given for the version record: the quickstart's 5 numeric features, the
    score and 13 impact groups at the defaults (100 fine bins, 2,000 examples) encode in
    about 14 KB; the bound for that configuration is 49 KB."""
    rng = np.random.default_rng(1)
    names = ["amount_last", "amount_sum_1h", "amount_max_6h", "income_last",
             "credit_score_last"]
    columns = {n: rng.lognormal(size=2000).tolist() for n in names}
    base = DriftReference.from_columns(columns, rng.random(2000).tolist())
    groups = {"group": [["A", "B", "C", "other", "unknown"][i % 5] for i in range(2000)],
              "age_band": [["18-25", "26-40", "41-65", "65+"][i % 4] for i in range(2000)]}
    impact = impact_sketches(groups, (rng.random(2000) < 0.5).tolist())
    encoded = DriftReference(base.examples, base.features, base.score, impact).encode()
    bound = max_encoded_bytes(names, ks_bins=100, max_categories=20, max_examples=2000,
                              impact_keys=list(impact))
    assert 12_000 < len(encoded) < 16_000 and bound < 50_000


def test_binning_from_a_sketch_equals_binning_from_the_values() -> None:
    rng = np.random.default_rng(2)
    values = [*rng.normal(size=3000).round(1).tolist(), None, None]
    direct = Binning.from_reference(ReferenceSample.from_values(values), 10, 100)
    sketched = Binning.from_sketch(VariableSketch.from_values(values, 100), 10)
    assert direct.edges == sketched.edges
    assert direct.reference_counts.tolist() == sketched.reference_counts.tolist()
    assert direct.coarse_of_fine.tolist() == sketched.coarse_of_fine.tolist()


def test_a_sketch_whose_bins_do_not_divide_says_what_to_change() -> None:
    sketch = VariableSketch.from_values(list(range(100)), ks_bins=100)
    with pytest.raises(ValueError, match=r"drift\.bins"):
        Binning.from_sketch(sketch, 7)


@pytest.mark.parametrize("bad", [
    {"format": "streambed-drift-reference", "version": 2, "examples": 1, "features": {}},
    {"format": "other"},
    {"format": "streambed-drift-reference", "version": 1, "examples": 1,
     "features": {"x": {"kind": "numeric", "nulls": 0, "quantiles": [2.0, 1.0],
                        "counts": [1, 1, 1]}}},
    {"format": "streambed-drift-reference", "version": 1, "examples": -1, "features": {}},
])
def test_bad_encodings_are_refused_with_a_reason(bad: dict) -> None:
    with pytest.raises(ValueError):
        DriftReference.from_json(bad)


def test_a_version_cut_from_too_few_examples_keeps_its_parents_reference() -> None:
    parent = DriftReference(2000, {})
    assert reference_at_cut(DriftReference(499, {}), parent, 500) is parent
    own = DriftReference(500, {})
    assert reference_at_cut(own, parent, 500) is own
