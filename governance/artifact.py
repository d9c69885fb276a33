"""The model as plain data: River's StandardScaler | LogisticRegression <-> a JSON artifact.

An artifact holds every number River keeps that affects a score or a future update:

- the scaler's per-feature ``counts``, ``means`` and ``variances`` (Welford's running
  statistics, River ``preprocessing.StandardScaler``);
- the logistic regression's ``weights`` and ``intercept``;
- the optimizer's state: SGD with a constant ``learning_rate`` and its ``iterations``
  counter (``n_iterations``; schedules read it, so it is kept though a constant rate does
  not); the intercept's own constant step size is in the spec;
- the :class:`~governance.config.ModelSpec` (hyperparameters, threshold, null fill) and
  the River version that produced it.

Nothing is pickled and nothing is executed: :meth:`LogisticModel.from_artifact` validates
the data (types, finite numbers, consistent keys) and raises :class:`ArtifactError` on
anything wrong, then sets the numbers into a fresh pipeline. A model learned for k
examples, turned into an artifact, written as JSON text, read back and learned further is
bit-for-bit the model learned without the interruption (tests/governance/test_artifact.py).

>>> m = LogisticModel(ModelSpec())
>>> m.learn({"x": 1.0}, 1); m.learn({"x": 3.0}, 0)
>>> a = m.to_artifact()
>>> a["scaler"]["means"], a["optimizer"]["iterations"]
({'x': 2.0}, 2)
>>> LogisticModel.from_artifact(a).score({"x": 1.0}) == m.score({"x": 1.0})
True
>>> LogisticModel.from_artifact({**a, "weights": {"x": "0.1"}})
Traceback (most recent call last):
...
governance.artifact.ArtifactError: invalid model artifact: weights.x: Input should be a valid number
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import river
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from river import compose, linear_model, optim, preprocessing
from river.utils import VectorDict

from governance.config import CLIP_GRADIENT, ModelSpec, sha256_hex

RIVER_VERSION: str = river.__version__
ARTIFACT_FORMAT = "streambed.logistic_regression/1"

Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
FeatureName = Annotated[str, Field(min_length=1)]


class ArtifactError(ValueError):
    """A model artifact that cannot be used; the message names the offending field."""


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScalerState(_Plain):
    """StandardScaler's running statistics per feature (population variance)."""

    counts: dict[FeatureName, Annotated[int, Field(strict=True, ge=1)]]
    means: dict[FeatureName, Finite]
    variances: dict[FeatureName, Annotated[float, Field(strict=True, allow_inf_nan=False,
                                                        ge=0)]]

    @model_validator(mode="after")
    def _same_features(self) -> ScalerState:
        if not set(self.counts) == set(self.means) == set(self.variances):
            raise ValueError("counts, means and variances must name the same features")
        return self


class OptimizerState(_Plain):
    """SGD with a constant learning rate, and how many steps it has taken."""

    kind: Literal["sgd"] = "sgd"
    learning_rate: Finite
    iterations: Annotated[int, Field(strict=True, ge=0)]


class LogisticArtifact(_Plain):
    """The wire shape of an artifact (its JSON Schema documents it)."""

    format: Literal["streambed.logistic_regression/1"] = ARTIFACT_FORMAT
    river_version: str
    model: ModelSpec
    scaler: ScalerState
    weights: dict[FeatureName, Finite]
    intercept: Finite
    optimizer: OptimizerState

    @model_validator(mode="after")
    def _consistent(self) -> LogisticArtifact:
        if self.optimizer.learning_rate != self.model.learning_rate:
            raise ValueError("optimizer.learning_rate differs from model.learning_rate")
        return self


def artifact_sha256(artifact: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the artifact's canonical JSON (sorted keys, compact)."""
    return sha256_hex(artifact)


def new_pipeline(spec: ModelSpec) -> compose.Pipeline:
    """A fresh, untrained River pipeline for a spec."""
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(
            optimizer=optim.SGD(spec.learning_rate), l2=spec.l2,
            intercept_lr=spec.intercept_learning_rate, clip_gradient=CLIP_GRADIENT),
    )


class LogisticModel:
    """A River pipeline with its spec: scores, learns, and converts to/from an artifact."""

    __slots__ = ("_lr", "_scaler", "pipeline", "spec")

    def __init__(self, spec: ModelSpec, pipeline: compose.Pipeline | None = None) -> None:
        self.spec = spec
        self.pipeline = new_pipeline(spec) if pipeline is None else pipeline
        self._scaler, self._lr = self.pipeline.steps.values()

    def predict_x(self, x: Mapping[str, float]) -> float:
        """Probability of the positive class for a model input (see ModelSpec.to_x)."""
        return float(self.pipeline.predict_proba_one(x).get(True, 0.0))

    def learn_x(self, x: Mapping[str, float], label: int) -> None:
        self.pipeline.learn_one(x, bool(label))

    def score(self, features: Mapping[str, float | int | bool | None]) -> tuple[float, int]:
        """Probability of the positive class and the thresholded decision."""
        p = self.predict_x(self.spec.to_x(features))
        return p, int(p >= self.spec.threshold)

    def learn(self, features: Mapping[str, float | int | bool | None], label: int) -> None:
        self.learn_x(self.spec.to_x(features), label)

    @property
    def iterations(self) -> int:
        return int(self._lr.optimizer.n_iterations)

    def to_artifact(self) -> dict[str, Any]:
        """Plain JSON-able data (sorted keys); raises ArtifactError if the model diverged."""
        scaler, lr = self._scaler, self._lr
        names = sorted(k for k, n in scaler.counts.items() if n > 0)
        weights = lr.weights
        data = {
            "format": ARTIFACT_FORMAT,
            "river_version": RIVER_VERSION,
            "model": self.spec.model_dump(mode="json"),
            "scaler": {
                "counts": {k: int(scaler.counts[k]) for k in names},
                "means": {k: float(scaler.means[k]) for k in names},
                "variances": {k: float(scaler.vars[k]) for k in names},
            },
            "weights": {k: float(weights[k]) for k in sorted(weights)},
            "intercept": float(lr.intercept),
            "optimizer": {"kind": "sgd", "learning_rate": self.spec.learning_rate,
                          "iterations": int(lr.optimizer.n_iterations)},
        }
        values = [data["intercept"], *data["weights"].values(),  # type: ignore[attr-defined]
                  *data["scaler"]["means"].values(), *data["scaler"]["variances"].values()]  # type: ignore[index]
        if not all(abs(v) < float("inf") for v in values):
            raise ArtifactError("the model diverged: a weight or statistic is not finite")
        return data

    @classmethod
    def from_artifact(cls, data: Mapping[str, Any] | LogisticArtifact) -> LogisticModel:
        """Rebuild the pipeline from artifact data; ArtifactError if anything is wrong."""
        art = data if isinstance(data, LogisticArtifact) else read_artifact(data)
        spec = art.model
        model = cls(spec)
        scaler, lr = model._scaler, model._lr
        scaler.counts = collections.Counter(art.scaler.counts)
        scaler.means = collections.defaultdict(float, art.scaler.means)
        scaler.vars = collections.defaultdict(float, art.scaler.variances)
        lr._weights = VectorDict(dict(art.weights))
        lr.intercept = art.intercept
        lr.optimizer.n_iterations = art.optimizer.iterations
        return model


def read_artifact(data: Mapping[str, Any]) -> LogisticArtifact:
    """Validate artifact data; ArtifactError naming each bad field's path."""
    if not isinstance(data, Mapping):
        raise ArtifactError(f"invalid model artifact: expected an object, got "
                            f"{type(data).__name__}")
    try:
        return LogisticArtifact.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors())
        raise ArtifactError(f"invalid model artifact: {problems}") from None
