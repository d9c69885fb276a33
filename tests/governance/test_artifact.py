"""The model as plain data: exact round trips through JSON text, and strict validation."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance import (
    RIVER_VERSION,
    ArtifactError,
    LogisticModel,
    ModelSpec,
    artifact_sha256,
    canonical_json,
)

NAMES = ["amount", "income", "credit", "apps_1h"]
values = st.one_of(st.none(), st.floats(-1e4, 1e4, allow_nan=False), st.integers(-50, 50))
examples = st.lists(
    st.tuples(st.dictionaries(st.sampled_from(NAMES), values, min_size=1),
              st.integers(0, 1)),
    min_size=1, max_size=60)
specs = st.builds(ModelSpec, learning_rate=st.floats(0.001, 1.0),
                  l2=st.sampled_from([0.0, 0.001, 0.1]),
                  fill_null=st.sampled_from([0.0, -1.0]))


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def through_json_text(model: LogisticModel) -> LogisticModel:
    return LogisticModel.from_artifact(json.loads(json.dumps(model.to_artifact())))


@settings(max_examples=150, deadline=None)
@given(spec=specs, data=examples, cut=st.integers(0, 60))
def test_learning_through_an_artifact_is_bit_identical_to_learning_without_a_stop(
        spec: ModelSpec, data: list, cut: int) -> None:
    cut = min(cut, len(data))
    straight = LogisticModel(spec)
    for x, y in data:
        straight.learn(x, y)
    resumed = LogisticModel(spec)
    for x, y in data[:cut]:
        resumed.learn(x, y)
    resumed = through_json_text(resumed)
    for x, y in data[cut:]:
        resumed.learn(x, y)

    a, b = straight.to_artifact(), resumed.to_artifact()
    assert canonical_json(a) == canonical_json(b)
    assert artifact_sha256(a) == artifact_sha256(b)
    assert {k: bits(v) for k, v in a["weights"].items()} == \
        {k: bits(v) for k, v in b["weights"].items()}
    assert bits(a["intercept"]) == bits(b["intercept"])
    for x, _ in data:
        assert bits(straight.score(x)[0]) == bits(resumed.score(x)[0])


def test_artifact_is_readable_plain_data_with_everything_that_affects_learning() -> None:
    m = LogisticModel(ModelSpec(learning_rate=0.1, l2=0.01))
    m.learn({"b": 2.0, "a": 1.0}, 1)
    m.learn({"b": 4.0, "a": None}, 0)
    art = m.to_artifact()
    assert set(art) == {"format", "river_version", "model", "scaler", "weights",
                        "intercept", "optimizer"}
    assert art["river_version"] == RIVER_VERSION
    assert art["scaler"] == {"counts": {"a": 2, "b": 2}, "means": {"a": 0.5, "b": 3.0},
                             "variances": {"a": 0.25, "b": 1.0}}
    assert art["optimizer"] == {"kind": "sgd", "learning_rate": 0.1, "iterations": 2}
    assert art["model"]["l2"] == 0.01 and art["model"]["intercept_learning_rate"] == 0.01
    assert list(art["weights"]) == ["a", "b"]
    json.dumps(art, allow_nan=False)  # strict JSON


def test_untrained_model_round_trips_and_scores_one_half() -> None:
    m = through_json_text(LogisticModel(ModelSpec()))
    assert m.score({"x": 3.0}) == (0.5, 1)
    assert m.to_artifact()["weights"] == {}


def test_score_does_not_depend_on_the_order_of_the_features_object() -> None:
    m = LogisticModel(ModelSpec())
    for i in range(50):
        m.learn({"a": 1e8 * (i % 3), "b": -1e-8 * i, "c": float(i)}, i % 2)
    forward = {"a": 3e8, "b": 1e-3, "c": 7.0}
    backward = dict(reversed(list(forward.items())))
    assert bits(m.score(forward)[0]) == bits(m.score(backward)[0])


def good_artifact() -> dict:
    m = LogisticModel(ModelSpec())
    m.learn({"a": 1.0, "b": 2.0}, 1)
    m.learn({"a": 3.0, "b": 0.0}, 0)
    return json.loads(json.dumps(m.to_artifact()))


def with_(path: str, value: object) -> dict:
    art = good_artifact()
    *parents, last = path.split(".")
    node = art
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return art


@pytest.mark.parametrize(("art", "message"), [
    (with_("weights.a", "0.5"), "weights.a"),
    (with_("weights.a", float("nan")), "weights.a"),
    (with_("intercept", float("inf")), "intercept"),
    (with_("intercept", True), "intercept"),
    (with_("scaler.counts.a", 0), "scaler.counts.a"),
    (with_("scaler.counts.a", 1.5), "scaler.counts.a"),
    (with_("scaler.variances.a", -1.0), "scaler.variances.a"),
    (with_("scaler.means.a", KeyError), "same features"),
    (with_("optimizer.iterations", -1), "optimizer.iterations"),
    (with_("optimizer.learning_rate", 0.5), "learning_rate differs"),
    (with_("optimizer.kind", "adam"), "optimizer.kind"),
    (with_("format", "pickle"), "format"),
    (with_("model.kind", "tree"), "model.kind"),
    (with_("model.extra", 1), "model.extra"),
    (with_("__reduce__", "os.system"), "__reduce__"),
    (with_("weights", KeyError), "weights"),
    (with_("weights", {"": 1.0}), "weights."),
])
def test_from_artifact_rejects_bad_data_with_one_error_naming_the_field(
        art: dict, message: str) -> None:
    with pytest.raises(ArtifactError, match="invalid model artifact") as err:
        LogisticModel.from_artifact(art)
    assert message in str(err.value)


@pytest.mark.parametrize("data", [None, [], "{}", b"\x80\x04", 42])
def test_from_artifact_rejects_non_objects(data: object) -> None:
    with pytest.raises(ArtifactError, match="expected an object"):
        LogisticModel.from_artifact(data)  # type: ignore[arg-type]


def test_a_diverged_model_has_no_artifact() -> None:
    m = LogisticModel(ModelSpec())
    m.learn({"a": 1.0}, 1)
    m._lr._weights["a"] = float("inf")
    with pytest.raises(ArtifactError, match="diverged"):
        m.to_artifact()
