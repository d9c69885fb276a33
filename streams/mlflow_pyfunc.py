"""The MLflow pyfunc of an exported version: scores a features frame as the scorer does.

MLflow loads this file as the model's code ("models from code"): nothing is pickled.
The model's data is the version's plain-data artifact (:mod:`governance.artifact`) and
its feature names, in ``streambed_version.json``; the River pipeline is rebuilt from it
by :meth:`governance.artifact.LogisticModel.from_artifact`, the scorer's own code
(bundled with the model), and each row is scored by :meth:`LogisticModel.score`, which
feeds the features through :meth:`governance.config.ModelSpec.to_x` (nulls filled, in
sorted-name order), exactly as ``streams.scorer.champion.Champion`` does.

``predict`` takes a frame with one column per feature (other columns are ignored; null,
NaN and NA are a null feature value) and returns ``score`` (probability of the positive
class) and ``decision`` (score >= the version's threshold) per row.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import set_model

from governance.artifact import LogisticModel

#: The model's data file inside its MLflow artifacts.
DATA_KEY = "streambed_version"


def feature_value(value: Any) -> float | int | str | None:
    """A frame cell as the scored record carries it: null for NaN/NA/None.

    >>> feature_value(float("nan")) is None, feature_value(np.int64(3)), feature_value("US")
    (True, 3, 'US')
    """
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer | np.bool_):
        return int(value)
    return value  # type: ignore[no-any-return]


def score_frame(model: LogisticModel, features: list[str], frame: pd.DataFrame
                ) -> pd.DataFrame:
    """``score, decision`` per row of ``frame`` (one column per name in ``features``)."""
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValueError(f"the frame has no column(s) {missing}; the model scores "
                         f"{features}")
    columns = [frame[name].astype(object).tolist() for name in features]
    scores, decisions = [], []
    for row in zip(*columns, strict=True):
        score, decision = model.score({n: feature_value(v)
                                       for n, v in zip(features, row, strict=True)})
        scores.append(score)
        decisions.append(decision)
    return pd.DataFrame({"score": np.array(scores, dtype=np.float64),
                         "decision": np.array(decisions, dtype=np.int64)},
                        index=frame.index)


class StreambedVersion(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """One streambed model version, rebuilt from its artifact at load time."""

    def load_context(self, context: Any) -> None:
        data = json.loads(Path(context.artifacts[DATA_KEY]).read_text(encoding="utf-8"))
        self.features: list[str] = list(data["features"])
        self.model = LogisticModel.from_artifact(data["artifact"])

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        return score_frame(self.model, self.features, pd.DataFrame(model_input))


set_model(StreambedVersion())
