"""The online model: River's StandardScaler | LogisticRegression, scoring events, learning labels.

A model version is cut every ``labels_per_version`` learned labels; each version can be
snapshotted (pickled River pipeline) to the compacted ``model.versions`` topic and restored
from it, so a restarted worker scores with the model it had, not a blank one.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Mapping

from river import compose, linear_model, optim, preprocessing

from streams.config import ModelConfig
from streams.records import FeatureValue, ModelVersion


def _pipeline(config: ModelConfig) -> compose.Pipeline:
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(config.learning_rate), l2=config.l2),
    )


class OnlineModel:
    """Scores feature vectors and learns from labels; knows its version."""

    def __init__(self, config: ModelConfig, feature_set: str) -> None:
        self.config = config
        self.feature_set = feature_set
        self.pipeline = _pipeline(config)
        self.labels_learned = 0
        self.version_number = 0

    @property
    def version(self) -> str:
        return f"{self.feature_set}-v{self.version_number}"

    def _x(self, features: Mapping[str, FeatureValue]) -> dict[str, float]:
        fill = self.config.fill_null
        return {k: fill if v is None else float(v) for k, v in features.items()}

    def score(self, features: Mapping[str, FeatureValue]) -> tuple[float, int]:
        """Probability of the positive class and the thresholded decision."""
        proba = self.pipeline.predict_proba_one(self._x(features)).get(True, 0.0)
        return float(proba), int(proba >= self.config.threshold)

    def learn(self, features: Mapping[str, FeatureValue], label: int) -> bool:
        """Learn one label; True when this cut a new model version."""
        self.pipeline.learn_one(self._x(features), bool(label))
        self.labels_learned += 1
        if self.labels_learned % self.config.labels_per_version == 0:
            self.version_number += 1
            return True
        return False

    def snapshot(self, now_ms: int) -> ModelVersion:
        return ModelVersion(
            model_version=self.version,
            feature_set=self.feature_set,
            labels_learned=self.labels_learned,
            created_at=now_ms,
            model_pickle_base64=base64.b64encode(pickle.dumps(self.pipeline)).decode("ascii"),
        )

    def restore(self, snap: ModelVersion) -> bool:
        """Adopt a snapshot if it was made for this feature set; True when adopted."""
        if snap.feature_set != self.feature_set:
            return False
        self.pipeline = pickle.loads(base64.b64decode(snap.model_pickle_base64))
        self.labels_learned = snap.labels_learned
        self.version_number = int(snap.model_version.rsplit("-v", 1)[1])
        return True
