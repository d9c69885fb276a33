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

Calibrate first. A model's scores are rarely probabilities (an online logistic model
trained on a few thousand examples is overconfident: on the simulator the raw-score
estimate was optimistic by 0.01-0.06 AUC and its 95% interval missed the realised AUC in
all but one window: ``bench/cbpe_oc.py``). As NannyML's CBPE does, the scores are first
mapped to probabilities by a calibrator fitted on the champion's recent labelled examples
(:mod:`monitors.calibration`); the AUC still ranks events by the scores, each counted
positive with its calibrated probability (``probabilities``).

Intervals: labels are drawn ``simulations`` times (seeded, so the same window gives the
same interval), each draw from the probabilities of one bootstrap refit of the calibrator
(``probability_draws``), and the realised statistic computed for each draw; the central
``level`` range is where the realised value will fall, IF the calibrated probabilities
hold on this traffic: the labels' chance and the calibrator's error both count. That holds
under covariate shift (P(features) moves) but NOT under concept shift: CBPE assumes
P(label | features) is unchanged.

The reliability flag (:func:`reliability_check`): the labelled window (oldest first) is
split in two; the calibrator fitted on the older half is judged on the newer half, which
it has not seen: (1) Hosmer–Lemeshow on its calibrated probabilities
(:func:`calibration_check`, the calibrator's bootstrap covariance added) rejects at
``false_flag_rate / 2`` AND the expected calibration error exceeds ``max_error`` (a least
effect size), or (2) the newer half's realised AUC falls outside the CBPE interval at level
``1 − false_flag_rate / 2``. While the calibrated probabilities hold, each happens with
probability at most ``false_flag_rate / 2``, so a reliable estimate is flagged in at most
``false_flag_rate`` of checks (Bonferroni; tested by simulation). A concept shift inside
the labelled window fails one or both; it is seen once its labels arrive (the label
delay). Once the whole window follows the new relation the calibrator has learned it (a
slope below 0 for a reversed one) and the estimate holds again.

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

from monitors.calibration import bootstrap_probabilities, fit_logistic
from monitors.chisquare import chi2_sf
from monitors.intervals import calibration_error, wilson
from monitors.performance import roc_auc

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


def expected_roc_auc(probabilities: Sequence[float] | np.ndarray,
                     ranking: Sequence[float] | np.ndarray | None = None) -> float:
    """The CBPE point estimate of ROC AUC: events ranked by ``ranking`` (the model's scores;
    default the probabilities themselves), each positive with its (calibrated) probability.

    >>> expected_roc_auc([0.0, 1.0])     # one sure negative below one sure positive
    1.0
    >>> expected_roc_auc([0.5, 0.5])
    0.5
    >>> expected_roc_auc([0.0, 1.0], ranking=[0.9, 0.1])   # the model ranks them wrong
    0.0
    """
    p = np.asarray(probabilities, dtype=np.float64)
    s = p if ranking is None else np.asarray(ranking, dtype=np.float64)
    if len(p) < 2:
        return NAN
    q = 1.0 - p
    order = np.argsort(s, kind="stable")
    ss, ps, qs = s[order], p[order], q[order]
    _, start, counts = np.unique(ss, return_index=True, return_counts=True)
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
    probabilities: Sequence[float] | np.ndarray | None = None,
    probability_draws: np.ndarray | None = None,
) -> PerformanceEstimate:
    """CBPE of ROC AUC, accuracy and per-group rates over one window of scored events.

    ``probabilities``: each event's calibrated probability of label 1 (default: the scores
    themselves, i.e. assumed calibrated); the AUC ranks events by ``scores``.
    ``probability_draws`` (replicates × events): the calibrator's uncertainty, e.g.
    :func:`monitors.calibration.bootstrap_probabilities`; simulation ``k`` draws its labels
    from row ``k mod replicates``, so the interval covers the calibrator's error too."""
    s = np.asarray(scores, dtype=np.float64)
    p = np.clip(np.asarray(s if probabilities is None else probabilities,
                           dtype=np.float64), 0.0, 1.0)
    d = np.asarray(decisions, dtype=bool)
    n = len(p)
    if n < 2:
        return PerformanceEstimate(n, NO_ESTIMATE, NO_ESTIMATE)
    rng = np.random.default_rng(seed)
    if probability_draws is None:
        chance: np.ndarray = p
    else:
        rows = np.clip(np.asarray(probability_draws, dtype=np.float64), 0.0, 1.0)
        chance = rows[np.arange(simulations) % len(rows)]
    labels = rng.random((simulations, n)) < chance  # each row: one draw of the labels
    positives = labels.sum(axis=1).astype(np.float64)
    negatives = n - positives
    rank = _ranks(s)
    auc_draws = _ratio(labels @ rank - positives * (positives + 1) / 2.0,
                       positives * negatives)
    accuracy_draws = (labels == d).mean(axis=1)
    auc = Estimate(expected_roc_auc(p, s), *_interval(auc_draws, level))
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
    probability_draws: np.ndarray | None = None,
) -> CalibrationCheck:
    """Hosmer–Lemeshow on ``groups`` equal-count score groups, and the ECE bound.

    Below ``min_labels`` labels there is no evidence either way: reported calibrated,
    with NaN statistics. When the probabilities come from a fitted calibrator, its
    bootstrap ``probability_draws`` (replicates × examples) add the calibrator's variance
    (their covariance across groups: one intercept and slope move every group) to the
    statistic's, so the calibrator's fitting error is not taken for miscalibration.

    >>> calibration_check([0.9] * 300, [0] * 300).calibrated     # says 90%, sees 0%
    False
    """
    p = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n = len(p)
    if n < min_labels:
        return CalibrationCheck(n, NAN, NAN, NAN, True)
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, groups) if len(c)]
    expected = np.array([p[c].sum() for c in chunks])
    observed = np.array([y[c].sum() for c in chunks])
    sizes = np.array([len(c) for c in chunks], dtype=np.float64)
    covariance = np.diag(expected * (1.0 - expected / sizes))
    if probability_draws is not None:  # the calibrator's error is shared across groups
        sums = np.stack([probability_draws[:, c].sum(axis=1) for c in chunks], axis=1)
        covariance = covariance + np.cov(sums, rowvar=False)
    keep = np.diag(covariance) > 1e-12
    gap = (observed - expected)[keep]
    statistic = float(gap @ np.linalg.solve(covariance[np.ix_(keep, keep)], gap))
    p_value = chi2_sf(statistic, groups)
    error = calibration_error(p, y)
    return CalibrationCheck(n, float(statistic), float(p_value), float(error),
                            not (p_value < alpha and error > max_error))


#: Label draws behind the flag's interval: its tails are ``false_flag_rate / 4`` each,
#: which 400 draws would resolve to one or two draws.
FLAG_SIMULATIONS = 4000
#: Bootstrap refits of the calibrator behind the flag (its interval's tails and the
#: calibration check's covariance need more than the estimate's 50).
FLAG_REPLICATES = 200


@dataclass(frozen=True)
class Reliability:
    """Whether the CBPE estimate holds, judged on labelled examples the calibrator was not
    fitted to (see :func:`reliability_check`)."""

    #: Held-out labelled examples judged on (the newer half of the labelled window).
    labels: int
    #: Hosmer–Lemeshow and ECE of the held-out examples' calibrated probabilities.
    calibration: CalibrationCheck
    #: CBPE of the held-out examples' AUC at the export ``level``, what they realised, the gap.
    estimate: Estimate
    realised_roc_auc: float
    gap: float
    covered: bool
    #: The interval the flag uses (level ``1 − false_flag_rate / 2``).
    flag_interval: Estimate
    #: False when the calibration check fails or the realised AUC leaves the flag interval.
    reliable: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reliability_check(
    scores: Sequence[float] | np.ndarray,
    decisions: Sequence[int] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    false_flag_rate: float = 0.01,
    max_error: float = 0.05,
    min_labels: int = 200,
    simulations: int = 400,
    level: float = 0.95,
    seed: int = 0,
) -> Reliability:
    """Fit the calibrator on the older half of the labelled examples (oldest first), then
    on the newer half: the calibration check at ``false_flag_rate / 2`` and whether the
    realised AUC falls in the CBPE interval at level ``1 − false_flag_rate / 2``. While the
    scores stay calibrated after calibration, each fails with probability at most half
    the rate, so a calibrated estimate is flagged in at most ``false_flag_rate`` of checks
    (Bonferroni). Below ``min_labels`` there is no evidence: reliable, NaN figures.

    >>> rng = np.random.default_rng(0)
    >>> s = rng.beta(2, 5, size=1000)
    >>> r = reliability_check(s, s >= 0.5, rng.random(1000) < s)
    >>> r.reliable, r.labels
    (True, 500)
    >>> y = np.r_[rng.random(500) < s[:500], rng.random(500) < 1 - s[500:]]  # concept shift
    >>> reliability_check(s, s >= 0.5, y).reliable
    False
    """
    s = np.asarray(scores, dtype=np.float64)
    d = np.asarray(decisions, dtype=bool)
    y = np.asarray(labels, dtype=np.int64)
    n = len(s)
    if n < min_labels:
        return Reliability(n, CalibrationCheck(n, NAN, NAN, NAN, True), NO_ESTIMATE, NAN,
                           NAN, False, NO_ESTIMATE, True)
    half = n // 2
    q = fit_logistic(s[:half], y[:half]).apply(s[half:])
    draws = bootstrap_probabilities(s[:half], y[:half], s[half:], seed=seed,
                                    replicates=FLAG_REPLICATES)
    s, d, y = s[half:], d[half:], y[half:]
    check = calibration_check(q, y, alpha=false_flag_rate / 2, max_error=max_error,
                              min_labels=0, probability_draws=draws)
    estimate = estimate_performance(s, d, probabilities=q, probability_draws=draws,
                                    simulations=simulations, level=level, seed=seed).roc_auc
    flag = estimate_performance(s, d, probabilities=q, probability_draws=draws,
                                simulations=max(simulations, FLAG_SIMULATIONS),
                                level=1.0 - false_flag_rate / 2, seed=seed).roc_auc
    realised = roc_auc(s, y)
    covered = bool(estimate.covers(realised))
    reliable = check.calibrated and bool(flag.covers(realised) or math.isnan(realised))
    return Reliability(len(s), check, estimate, realised, estimate.value - realised,
                       covered, flag, reliable)

