"""Scoring a batch at once gives every row the very bits River gives it alone.

Decisions, rebuilds and exports depend on those bits, so the property is equality of the
IEEE-754 representation, not closeness. The scorer's :class:`ScoringModel` (the artifact's
numbers without River) gives the same bits, one row or many.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from river.utils.math import sigmoid as river_sigmoid

from governance import ArtifactError, LogisticModel, ModelSpec, ScoringModel
from governance.artifact import sigmoid
from tests.support import max_examples

NAMES = ["amount", "apps_1h", "channel_last", "credit", "gap"]
value = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e4, 1e4, allow_nan=False), st.floats(-1e-300, 1e-300),
    st.sampled_from(["web", "branch", "partner", ""]),
)
row = st.dictionaries(st.sampled_from(NAMES), value, min_size=1)
examples = st.lists(st.tuples(row, st.integers(0, 1)), max_size=40)
specs = st.builds(ModelSpec, learning_rate=st.floats(0.001, 1.0),
                  l2=st.sampled_from([0.0, 0.01]), fill_null=st.sampled_from([0.0, -1.0, 7.5]),
                  text_buckets=st.sampled_from([1, 3, 16]))


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


@settings(max_examples=max_examples(300), deadline=None)
@given(spec=specs, learned=examples, rows=st.lists(row, min_size=1, max_size=30),
       same_keys=st.booleans())
def test_batch_scores_are_bit_equal_to_river_row_by_row(
    spec: ModelSpec, learned: list, rows: list, same_keys: bool
) -> None:
    model = LogisticModel(spec)
    for x, y in learned:
        try:
            model.learn(x, y)
        except OverflowError:  # a float too large for River's update: not a model to score
            return
    if same_keys:  # the scorer's case: every row names every feature
        rows = [{name: r.get(name) for name in NAMES} for r in rows]
    alone = [model.score(r)[0] for r in rows]
    assert bits(model.score_batch(rows)) == bits(alone)
    try:
        artifact = model.to_artifact()
    except ArtifactError:  # diverged (a weight not finite): no artifact to serve
        return
    scoring = ScoringModel.from_artifact(artifact)
    assert bits(scoring.score_batch(rows)) == bits(alone)
    assert [scoring.score(r) for r in rows] == [model.score(r) for r in rows]


@settings(max_examples=max_examples(200), deadline=None)
@given(weights=st.dictionaries(st.sampled_from(NAMES), st.floats(-1e3, 1e3), min_size=1),
       means=st.dictionaries(st.sampled_from(NAMES), st.floats(-1e6, 1e6), min_size=1),
       variance=st.floats(0, 1e8), intercept=st.floats(-40, 40),
       rows=st.lists(st.fixed_dictionaries({n: st.floats(-1e9, 1e9) for n in NAMES}),
                     min_size=1, max_size=50))
def test_batch_scores_are_bit_equal_for_any_learned_state(
    weights: dict, means: dict, variance: float, intercept: float, rows: list
) -> None:
    """Artifacts as a learner may write them: weights, means and variances of any size,
    a feature the model never saw (no statistics: River scales it to 0)."""
    names = sorted(means)
    artifact = LogisticModel(ModelSpec()).to_artifact()
    artifact.update(
        scaler={"counts": dict.fromkeys(names, 3), "means": means,
                "variances": dict.fromkeys(names, variance)},
        weights=weights, intercept=intercept)
    model = LogisticModel.from_artifact(artifact)
    alone = [model.score(r)[0] for r in rows]
    assert bits(model.score_batch(rows)) == bits(alone)
    scoring = ScoringModel.from_artifact(artifact)
    assert bits(scoring.score_batch(rows)) == bits(alone)
    assert bits([scoring.score(r)[0] for r in rows]) == bits(alone)


@given(st.one_of(st.floats(allow_nan=False), st.floats(-40, 40)))
def test_the_sigmoid_is_rivers_bit_for_bit(x: float) -> None:
    assert bits([sigmoid(x)]) == bits([river_sigmoid(x)])


def test_an_untrained_scoring_model_scores_as_an_untrained_pipeline() -> None:
    rows = [{"amount": 3.0, "channel_last": "web", "gap": None}]
    fresh = LogisticModel(ModelSpec())
    assert ScoringModel(ModelSpec()).score_batch(rows) == fresh.score_batch(rows) == [0.5]
    assert ScoringModel(ModelSpec()).score(rows[0]) == fresh.score(rows[0])


def test_an_empty_batch_scores_nothing() -> None:
    assert LogisticModel(ModelSpec()).score_batch([]) == []
    assert ScoringModel(ModelSpec()).score_batch([]) == []
