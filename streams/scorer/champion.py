"""The model a scorer serves: the current champion, read-only, swapped between batches.

A scorer never learns. It scores with the champion that the learner (or a person)
promoted on ``model.versions``; until there is one it scores with the blank model of the
configured kind (version ``<feature_set>-v0``: every score 0.5). :meth:`Champion.score_many`
scores one batch; a new champion replaces the object between batches, so every scored
record names the version that scored it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from river import compose, linear_model, optim, preprocessing

from streams.config import ModelConfig


def blank_pipeline(config: ModelConfig) -> compose.Pipeline:
    """The configured model with nothing learned: StandardScaler | LogisticRegression."""
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(config.learning_rate), l2=config.l2),
    )


def model_inputs(features: Mapping[str, Any], fill_null: float) -> dict[str, float]:
    """What the model receives: numbers as floats, nulls (and non-numbers) as ``fill_null``."""
    x = {}
    for name, value in features.items():
        if value is None or isinstance(value, str):
            x[name] = fill_null
        else:
            x[name] = float(value)
    return x


class Champion:
    """A model version that scores feature vectors; immutable once serving."""

    def __init__(self, pipeline: compose.Pipeline, version: str, config: ModelConfig) -> None:
        self.pipeline = pipeline
        self.version = version
        self.threshold = config.threshold
        self.fill_null = config.fill_null

    @classmethod
    def blank(cls, config: ModelConfig, feature_set: str) -> Champion:
        return cls(blank_pipeline(config), f"{feature_set}-v0", config)

    def score_one(self, features: Mapping[str, Any]) -> float:
        proba = self.pipeline.predict_proba_one(model_inputs(features, self.fill_null))
        score = float(proba.get(True, 0.0))
        if not 0.0 <= score <= 1.0 or math.isnan(score):
            raise ValueError(f"the model gave {score!r}, not a probability")
        return score

    def score_many(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        return [self.score_one(row) for row in rows]

    def decision(self, score: float) -> int:
        return int(score >= self.threshold)
