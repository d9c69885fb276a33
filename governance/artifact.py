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
import importlib.metadata
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from governance.config import CLIP_GRADIENT, ModelSpec, sha256_hex

if TYPE_CHECKING:
    from river import compose

#: River is imported only where a pipeline is built (learning): its package imports
#: (SciPy's stats, SQLAlchemy, its datasets) take seconds, and a scorer, which only scores
#: (:class:`ScoringModel`), restarts without them.
RIVER_VERSION: str = importlib.metadata.version("river")
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


def sigmoid(x: float) -> float:
    """River's ``river.utils.math.sigmoid``, the same operations in the same order (so the
    same bits; a test holds the two equal), without importing River.

    >>> sigmoid(0.0), sigmoid(-31.0), sigmoid(31.0)
    (0.5, 0, 1)
    """
    if x < -30:
        return 0
    if x > 30:
        return 1
    return 1 / (1 + math.exp(-x))


def new_pipeline(spec: ModelSpec) -> compose.Pipeline:
    """A fresh, untrained River pipeline for a spec."""
    from river import compose, linear_model, optim, preprocessing

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

    def score_batch(self, rows: Sequence[Mapping[str, float | int | bool | str | None]]
                    ) -> list[float]:
        """Probabilities of the positive class for many rows of features, each bit-equal
        to ``score(row)[0]``.

        River scores one row as ``sigmoid(sum(w[k] * (x[k] - mean[k]) / var[k] ** 0.5) +
        intercept)``, the sum taken left to right over the row's model inputs in sorted
        name order (:meth:`ModelSpec.to_x`), starting from 0.0. This does the same sum
        for every row at once, one model input at a time in that order: elementwise
        subtraction, division, product and addition round exactly as Python's do, so each
        row's sum is the same float. A matrix product would not be: BLAS sums in blocks
        and fuses multiply-adds, and a change in the last bit changes decisions, rebuilds
        and exports. An input a row lacks (a text value's other buckets) adds nothing
        there; the exponential is River's own ``sigmoid``, row by row (NumPy's ``exp`` may
        round differently from the C library's).

        >>> m = LogisticModel(ModelSpec())
        >>> for i in range(20):
        ...     m.learn({"n": i, "text": "ab"[i % 2], "gap": None if i % 3 else i / 7}, i % 2)
        >>> rows = [{"n": 3, "text": "a", "gap": None}, {"n": 1e6, "text": "b", "gap": 0.5}]
        >>> m.score_batch(rows) == [m.score(r)[0] for r in rows]
        True
        """
        return score_rows(self.spec, self._scaler.means, self._scaler.vars,
                          self._lr._weights, self._lr.intercept, rows)

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
        from river.utils import VectorDict

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


def score_rows(spec: ModelSpec, means: Mapping[str, float], variances: Mapping[str, float],
               weights: Mapping[str, float], intercept: float,
               rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """The positive class's probability for each row of features, from the scaler's
    statistics and the regression's weights (:meth:`LogisticModel.score_batch` says how,
    and why it is bit-equal to River's own score of one row)."""
    if not rows:
        return []
    z = np.zeros(len(rows))
    with np.errstate(all="ignore"):  # overflow and NaN as River's floats give them
        for key, (values, present) in sorted(_model_inputs(spec, rows).items()):
            var = variances.get(key, 0.0)
            t = (values - means.get(key, 0.0)) / var**0.5 if var else np.zeros(len(values))
            term = weights.get(key, 0.0) * t
            z = z + (term if present is None else np.where(present, term, 0.0))
    z = z + intercept
    return [float(sigmoid(v)) for v in z.tolist()]


def _model_inputs(spec: ModelSpec, rows: Sequence[Mapping[str, Any]]
                  ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The model inputs of many rows as columns: name -> (values, which rows have it;
    None when all do), as :meth:`ModelSpec.to_x` makes them for one row."""
    n, fill, buckets = len(rows), spec.fill_null, spec.text_buckets
    first = rows[0].keys()
    same = all(row.keys() == first for row in rows)
    names = first if same else dict.fromkeys(k for row in rows for k in row)
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name in names:
        col = [row[name] for row in rows] if same else \
            [row.get(name, _ABSENT) for row in rows]
        kinds = set(map(type, col))
        if kinds <= _NUMBERS:
            out[name] = (np.array(col, dtype=np.float64), None)
            continue
        if kinds <= _NUMBERS_OR_NULL:
            out[name] = (np.array([fill if v is None else v for v in col],
                                  dtype=np.float64), None)
            continue
        numeric = np.zeros(n, dtype=bool)
        values = np.zeros(n)
        texts: dict[str, list[int]] = {}
        for i, v in enumerate(col):
            if v is _ABSENT:
                continue
            if isinstance(v, str):
                texts.setdefault(f"{name}[{zlib.crc32(v.encode()) % buckets}]",
                                 []).append(i)
            else:
                numeric[i], values[i] = True, fill if v is None else float(v)
        if numeric.any():
            out[name] = (values, None if numeric.all() else numeric)
        for key, at in texts.items():
            present = np.zeros(n, dtype=bool)
            present[at] = True
            out[key] = (np.ones(n), present)
    return out


class ScoringModel:
    """A model that only scores: the artifact's numbers, without a River pipeline (a
    scorer serves versions and never learns, and starts seconds sooner without River's
    imports). Its scores are :func:`score_rows`'s, bit-equal to
    :class:`LogisticModel`'s for the same artifact (tests/governance/test_artifact.py).

    >>> m = LogisticModel(ModelSpec())
    >>> m.learn({"x": 1.0, "t": "a"}, 1); m.learn({"x": 3.0, "t": None}, 0)
    >>> s = ScoringModel.from_artifact(m.to_artifact())
    >>> s.score({"x": 2.5, "t": "a"}) == m.score({"x": 2.5, "t": "a"})
    True
    >>> ScoringModel(ModelSpec()).score({"x": 1.0})
    (0.5, 1)
    """

    __slots__ = ("intercept", "means", "spec", "variances", "weights")

    def __init__(self, spec: ModelSpec, means: Mapping[str, float] | None = None,
                 variances: Mapping[str, float] | None = None,
                 weights: Mapping[str, float] | None = None, intercept: float = 0.0) -> None:
        self.spec = spec
        self.means = dict(means or {})
        self.variances = dict(variances or {})
        self.weights = dict(weights or {})
        self.intercept = float(intercept)

    def score(self, features: Mapping[str, float | int | bool | None]) -> tuple[float, int]:
        """Probability of the positive class and the thresholded decision."""
        p = self.score_batch([features])[0]
        return p, int(p >= self.spec.threshold)

    def score_batch(self, rows: Sequence[Mapping[str, float | int | bool | str | None]]
                    ) -> list[float]:
        """Probabilities of the positive class for many rows (:func:`score_rows`)."""
        return score_rows(self.spec, self.means, self.variances, self.weights,
                          self.intercept, rows)

    @classmethod
    def from_artifact(cls, data: Mapping[str, Any] | LogisticArtifact) -> ScoringModel:
        """The artifact's numbers; ArtifactError if anything is wrong."""
        art = data if isinstance(data, LogisticArtifact) else read_artifact(data)
        return cls(art.model, art.scaler.means, art.scaler.variances, art.weights,
                   art.intercept)


#: A row without a feature another row has (only a text value's buckets differ normally).
_ABSENT: Any = object()
_NUMBERS = {float, int, bool}
_NUMBERS_OR_NULL = {*_NUMBERS, type(None)}


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
