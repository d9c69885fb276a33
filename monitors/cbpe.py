"""Performance before labels: confidence-based performance estimation (CBPE).

A calibrated model's score ``p`` IS the probability that the label is 1. Over recent
traffic whose labels have not come yet, each event's label is then a Bernoulli(``p``)
draw, so the performance the labels will show can be estimated now (the idea of NannyML's
CBPE; see its documentation, "Estimating performance for binary classification"):

- ROC AUC: the expected Mann–Whitney count over the expected number of positive-negative
  pairs, ``Σ_i Σ_j p_i (1 − p_j) [s_i > s_j] (ties ½) / Σ_{i≠j} p_i (1 − p_j)``;
- accuracy at the decision threshold: ``mean(d_i p_i + (1 − d_i)(1 − p_i))``;
- per group: expected TPR ``Σ_{d=1} p / Σ p`` and FPR ``Σ_{d=1} (1 − p) / Σ (1 − p)``;
  the favourable-outcome rate needs no label (a Wilson interval of the observed share).

Intervals: labels are drawn ``simulations`` times from the scores (seeded, so the same
window gives the same interval) and the realised statistic computed for each draw; the
central ``level`` range is where the realised value will fall, IF the model is calibrated
on this traffic. That holds under covariate shift (P(features) moves) but NOT under
concept shift: CBPE assumes P(label | features) is unchanged. So the estimate is checked
on the labelled examples that do arrive (:func:`calibration_check`: the Hosmer–Lemeshow
test with ``G`` score groups, chi-square with G degrees of freedom on data the model was
not fitted to, plus a bound on the expected calibration error) and, once labels for
estimated events arrive, by whether the realised AUC falls inside the interval; failing
either flags the estimate unreliable. The flag lags the concept shift by the label delay.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.beta(2, 5, size=2000)
>>> e = estimate_performance(p, p >= 0.5, simulations=200, seed=1)
>>> round(e.roc_auc.value, 3), e.roc_auc.lower < e.roc_auc.value < e.roc_auc.upper
(0.72, True)
>>> y = (rng.random(2000) < p).astype(int)
>>> c = calibration_check(p, y)
>>> c.calibrated, round(c.p_value, 2) > 0.01
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from monitors.chisquare import chi2_sf
from monitors.intervals import calibration_error, wilson

NAN = float("nan")


@dataclass(frozen=True)
class Estimate:
    """A value with its interval (NaN where undefined)."""

    value: float
    lower: float
    upper: float

    def covers(self, realised: float) -> bool:
        return self.lower <= realised <= self.upper


NO_ESTIMATE = Estimate(NAN, NAN, NAN)


@dataclass(frozen=True)
class GroupEstimate:
    events: int
    favourable_rate: Estimate
    true_positive_rate: Estimate
    false_positive_rate: Estimate


@dataclass(frozen=True)
class PerformanceEstimate:
    """CBPE over one window of scored events."""

    events: int
    roc_auc: Estimate
    accuracy: Estimate
    #: attribute → group → estimates.
    groups: dict[str, dict[str, GroupEstimate]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks, ties averaged."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def expected_roc_auc(scores: Sequence[float] | np.ndarray) -> float:
    """The CBPE point estimate of ROC AUC for calibrated ``scores``.

    >>> expected_roc_auc([0.0, 1.0])     # one sure negative below one sure positive
    1.0
    >>> expected_roc_auc([0.5, 0.5])
    0.5
    """
    p = np.asarray(scores, dtype=np.float64)
    if len(p) < 2:
        return NAN
    q = 1.0 - p
    order = np.argsort(p, kind="stable")
    ps, qs = p[order], q[order]
    _, start, counts = np.unique(ps, return_index=True, return_counts=True)
    below = np.concatenate([[0.0], np.cumsum(qs)])  # Σ q of the j sorted before
    tie_q = np.add.reduceat(qs, start)
    group = np.repeat(np.arange(len(start)), counts)
    lower_q = below[start][group]
    same_q = tie_q[group] - qs  # ties other than i itself
    numerator = float(np.sum(ps * (lower_q + 0.5 * same_q)))
    denominator = float(p.sum() * q.sum() - np.sum(p * q))
    return numerator / denominator if denominator > 0 else NAN


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    kept = draws[~np.isnan(draws)]
    if len(kept) * 2 < len(draws) or len(kept) == 0:
        return NAN, NAN
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(kept, [tail, 100.0 - tail])
    return float(low), float(high)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def estimate_performance(
    scores: Sequence[float] | np.ndarray,
    decisions: Sequence[int] | np.ndarray,
    groups: Mapping[str, Sequence[str]] | None = None,
    *,
    favourable_decision: int = 0,
    simulations: int = 400,
    level: float = 0.95,
    seed: int = 0,
    min_group_size: int = 30,
) -> PerformanceEstimate:
    """CBPE of ROC AUC, accuracy and per-group rates over one window of scored events."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    d = np.asarray(decisions, dtype=bool)
    n = len(p)
    if n < 2:
        return PerformanceEstimate(n, NO_ESTIMATE, NO_ESTIMATE)
    rng = np.random.default_rng(seed)
    labels = rng.random((simulations, n)) < p  # each row: one draw of the labels
    positives = labels.sum(axis=1).astype(np.float64)
    negatives = n - positives
    rank = _ranks(p)
    auc_draws = _ratio(labels @ rank - positives * (positives + 1) / 2.0,
                       positives * negatives)
    accuracy_draws = (labels == d).mean(axis=1)
    auc = Estimate(expected_roc_auc(p), *_interval(auc_draws, level))
    accuracy = Estimate(float(np.mean(np.where(d, p, 1.0 - p))),
                        *_interval(accuracy_draws, level))
    by_attribute: dict[str, dict[str, GroupEstimate]] = {}
    for attribute, values in (groups or {}).items():
        names = np.asarray(values, dtype=object)
        by_attribute[attribute] = {}
        for group in sorted(set(names.tolist())):
            member = names == group
            m = int(member.sum())
            favourable = int(np.sum(d[member] == bool(favourable_decision)))
            rate = Estimate(favourable / m, *wilson(favourable, m, _z(level)))
            tpr = fpr = NO_ESTIMATE
            if m >= min_group_size:
                y, dm, pm = labels[:, member], d[member], p[member]
                tpr = Estimate(_safe(pm[dm].sum(), pm.sum()),
                               *_interval(_ratio((y & dm).sum(1), y.sum(1)), level))
                fpr = Estimate(_safe((1 - pm[dm]).sum(), (1 - pm).sum()),
                               *_interval(_ratio((~y & dm).sum(1), (~y).sum(1)), level))
            by_attribute[attribute][str(group)] = GroupEstimate(m, rate, tpr, fpr)
    return PerformanceEstimate(n, auc, accuracy, by_attribute)


def _safe(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else NAN


def _z(level: float) -> float:
    """The two-sided normal quantile for ``level`` (bisection on erf: no scipy)."""
    target = (1.0 + level) / 2.0
    low, high = 0.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2.0
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


@dataclass(frozen=True)
class CalibrationCheck:
    """Whether the scores are still probabilities on the labelled examples."""

    labels: int
    #: Hosmer–Lemeshow statistic and its p-value (chi-square, ``groups`` df).
    statistic: float
    p_value: float
    #: Expected calibration error (equal-width bins).
    calibration_error: float
    #: False when the test rejects at ``alpha`` AND the error exceeds the bound.
    calibrated: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_check(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    groups: int = 10,
    alpha: float = 0.01,
    max_error: float = 0.05,
    min_labels: int = 200,
) -> CalibrationCheck:
    """Hosmer–Lemeshow on ``groups`` equal-count score groups, and the ECE bound.

    Below ``min_labels`` labels there is no evidence either way: reported calibrated,
    with NaN statistics.

    >>> calibration_check([0.9] * 300, [0] * 300).calibrated     # says 90%, sees 0%
    False
    """
    p = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n = len(p)
    if n < min_labels:
        return CalibrationCheck(n, NAN, NAN, NAN, True)
    order = np.argsort(p, kind="stable")
    statistic = 0.0
    for chunk in np.array_split(order, groups):
        expected, observed, size = p[chunk].sum(), y[chunk].sum(), len(chunk)
        variance = expected * (1.0 - expected / size)
        if variance > 1e-12:
            statistic += (observed - expected) ** 2 / variance
    p_value = chi2_sf(statistic, groups)
    error = calibration_error(p, y)
    return CalibrationCheck(n, float(statistic), float(p_value), float(error),
                            not (p_value < alpha and error > max_error))
