"""Logistic calibration: a monotone map from a model's scores to probabilities.

CBPE (:mod:`monitors.cbpe`) needs probabilities, and a model's scores are often not: an
online logistic model trained on a few thousand examples is systematically overconfident
(its 0.9 comes true less often than 90% of the time). As NannyML's CBPE does, the scores
are first mapped to probabilities by a calibrator fitted on labelled examples. Here it is
logistic calibration on the score's logit, ``P(y=1 | s) = σ(a + b·logit(s))`` (Platt 1999;
Cox 1958 calls ``b`` the calibration slope), fitted by Newton's method on the log-likelihood.
It keeps the model's ranking (``b > 0``) and corrects what the scores claim.

Why not isotonic regression (NannyML's default): with the few hundred labelled examples a
scorer holds, isotonic's step function is noisy and flattens the ranking inside each step,
so the estimated AUC was biased by +0.013 and its 95% interval covered the realised AUC in
79% of simulated windows (500 calibration examples, scores twice as confident as true);
the two-parameter logistic map was unbiased (mean gap 0.001). Miscalibration that is not
of this shape is left to the calibration check, which then flags the estimate.

Its own uncertainty: :func:`bootstrap_probabilities` refits it on resamples of the
labelled examples, so the CBPE interval covers the calibrator's error as well as the
labels' chance.

>>> c = fit_logistic([0.2] * 4 + [0.8] * 4, [0, 0, 0, 1] + [0, 1, 1, 1])
>>> [round(float(v), 3) for v in c.apply([0.2, 0.8])]   # the observed rates
[0.25, 0.75]
>>> c.slope > 0
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Scores are clipped to ``[EPSILON, 1 − EPSILON]`` before the logit.
EPSILON = 1e-6
#: Ridge on the intercept and slope (keeps a separable sample finite).
RIDGE = 1e-3
#: Newton steps, each at most ``MAX_STEP`` in either coefficient (plain Newton overshoots
#: on logistic likelihoods when some logits are extreme).
NEWTON_STEPS = 50
MAX_STEP = 1.0
#: The linear predictor is clipped to ``±LINEAR_CLIP`` before ``exp`` (no overflow).
LINEAR_CLIP = 35.0


def logit(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    s = np.clip(np.asarray(scores, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return np.log(s / (1.0 - s))


@dataclass(frozen=True)
class LogisticCalibrator:
    """``P(y=1 | s) = σ(intercept + slope·logit(s))``, fitted on ``examples`` labels."""

    intercept: float
    slope: float
    examples: int

    def apply(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        """The calibrated probability of each score."""
        return _sigmoid(self.intercept + self.slope * logit(scores))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -LINEAR_CLIP, LINEAR_CLIP)))


def _fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    w = np.ones_like(x) if weights is None else weights
    design = np.stack([np.ones_like(x), x], axis=1)
    beta = np.array([0.0, 1.0])  # start from "already calibrated"
    for _ in range(NEWTON_STEPS):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (w * (y - p)) - RIDGE * beta
        hessian = (design * (w * p * (1.0 - p))[:, None]).T @ design + RIDGE * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        step = step * min(1.0, MAX_STEP / max(float(np.abs(step).max()), 1e-300))
        beta = beta + step
        if float(np.abs(step).max()) < 1e-10:
            break
    return beta


def fit_logistic(scores: Sequence[float] | np.ndarray,
                 labels: Sequence[int] | np.ndarray) -> LogisticCalibrator:
    """Fit the calibration intercept and slope on labelled examples."""
    x = logit(scores)
    if len(x) == 0:
        raise ValueError("fit_logistic needs at least one labelled example")
    a, b = _fit(x, np.asarray(labels, dtype=np.float64))
    return LogisticCalibrator(float(a), float(b), len(x))


def bootstrap_probabilities(scores: Sequence[float] | np.ndarray,
                            labels: Sequence[int] | np.ndarray,
                            new_scores: Sequence[float] | np.ndarray,
                            *, replicates: int = 50, seed: int = 0) -> np.ndarray:
    """``replicates`` × ``len(new_scores)``: the new scores calibrated by calibrators refitted
    on bootstrap resamples of the labelled examples (Efron & Tibshirani 1993), drawn as
    multinomial weights so each refit is one weighted fit."""
    x = logit(scores)
    y = np.asarray(labels, dtype=np.float64)
    new = logit(new_scores)
    rng = np.random.default_rng(seed)
    out = np.empty((replicates, len(new)))
    for r in range(replicates):
        weights = rng.multinomial(len(x), np.full(len(x), 1.0 / len(x))).astype(np.float64)
        a, b = _fit(x, y, weights)
        out[r] = _sigmoid(a + b * new)
    return out
