"""Differences between two models measured on the same examples, with their standard errors.

Two models scored the same events, so their errors are correlated and the difference of
their statistics is far less noisy than either statistic: each function here returns the
difference (candidate minus champion) and the standard error of that difference, taking
the correlation into account.

- :func:`auc_difference`: ROC AUC, DeLong, DeLong and Clarke-Pearson (1988), computed
  with midranks (Sun and Xu, 2014): ties count one half, as in
  :func:`monitors.performance.roc_auc`.
- :func:`log_loss_difference`: mean per-example log-loss difference and its standard
  error (the central limit theorem on the paired differences).
- :func:`proportion_difference` and :func:`log_proportion_difference`: a rate (e.g. the
  share of a group given the favourable outcome) under both models' decisions on the same
  people; the variance uses the discordant pairs (as McNemar's test does).

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1]); a = np.array([.1, .4, .35, .8]); b = np.array([.1, .2, .3, .4])
>>> d, se = auc_difference(a, b, y)
>>> float(d)                         # 0.75 - 1.0
-0.25
>>> d, se = proportion_difference(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
>>> float(d), round(float(se), 4)
(0.25, 0.2165)
"""

from __future__ import annotations

import numpy as np

from monitors.performance import LOG_LOSS_CLIP


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks.

    >>> midranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    n = len(values)
    # each run of equal values: first and last 1-based position, its mean for every member
    new_run = np.empty(n, dtype=bool)
    new_run[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_run[1:])
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], n)
    run_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def _delong_components(scores: np.ndarray, positive: np.ndarray
                       ) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components V10 (per positive) and V01 (per negative)."""
    pos, neg = scores[positive], scores[~positive]
    m, n = len(pos), len(neg)
    all_ranks = midranks(np.concatenate([pos, neg]))
    v10 = (all_ranks[:m] - midranks(pos)) / n          # share of negatives below each positive
    v01 = 1.0 - (all_ranks[m:] - midranks(neg)) / m    # share of positives above each negative
    return float(v10.mean()), v10, v01


def auc_difference(candidate: np.ndarray, champion: np.ndarray, labels: np.ndarray
                   ) -> tuple[float, float]:
    """AUC(candidate) - AUC(champion) and DeLong's standard error of that difference.

    Needs at least two positives and two negatives (ValueError otherwise).
    """
    a1, a0, se = paired_auc(candidate, champion, labels)
    return a1 - a0, se


def paired_auc(candidate: np.ndarray, champion: np.ndarray, labels: np.ndarray
               ) -> tuple[float, float, float]:
    """Both AUCs and DeLong's standard error of their difference (see auc_difference)."""
    positive = np.asarray(labels).astype(bool)
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise ValueError(f"AUC difference needs two positives and two negatives, has {m}, {n}")
    a1, v10_1, v01_1 = _delong_components(np.asarray(candidate, dtype=np.float64), positive)
    a0, v10_0, v01_0 = _delong_components(np.asarray(champion, dtype=np.float64), positive)
    var = (np.var(v10_1 - v10_0, ddof=1) / m + np.var(v01_1 - v01_0, ddof=1) / n)
    return a1, a0, float(np.sqrt(max(var, 0.0)))


def log_losses(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each example's log loss (scores clipped as in :func:`monitors.performance.log_loss`)."""
    p = np.clip(np.asarray(scores, dtype=np.float64), LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
    y = np.asarray(labels)
    return -np.where(y == 1, np.log(p), np.log1p(-p))


def log_loss_difference(candidate: np.ndarray, champion: np.ndarray, labels: np.ndarray
                        ) -> tuple[float, float]:
    """Mean log loss of the candidate minus the champion's, and its standard error.

    >>> y = np.array([1, 0, 1, 0])
    >>> d, se = log_loss_difference(np.full(4, .5), np.full(4, .5), y)
    >>> float(d), float(se)
    (0.0, 0.0)
    """
    diff = log_losses(candidate, labels) - log_losses(champion, labels)
    n = len(diff)
    if n < 2:
        raise ValueError("a log-loss difference needs two examples")
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(n))


def _paired_counts(a: np.ndarray, b: np.ndarray) -> tuple[int, float, float, float]:
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    n = len(a)
    return n, a.mean() if n else 0.0, b.mean() if n else 0.0, (a & b).mean() if n else 0.0


def proportion_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """mean(a) - mean(b) for two binary outcomes of the same people, and its standard
    error: ``sqrt((p10 + p01 - (p10 - p01)^2) / n)`` (discordant shares)."""
    n, pa, pb, p11 = _paired_counts(a, b)
    if n == 0:
        return 0.0, float("inf")
    p10, p01 = pa - p11, pb - p11
    var = (p10 + p01 - (p10 - p01) ** 2) / n
    return float(pa - pb), float(np.sqrt(max(var, 0.0)))


def log_proportion_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """log(mean(a)) - log(mean(b)) for two binary outcomes of the same people, and its
    delta-method standard error (infinite when either mean is 0).

    >>> d, se = log_proportion_difference(np.array([1, 1, 0, 0] * 25), np.array([1, 1, 0, 0] * 25))
    >>> float(d), float(se)
    (0.0, 0.0)
    """
    n, pa, pb, p11 = _paired_counts(a, b)
    if n == 0 or pa == 0 or pb == 0:
        return 0.0, float("inf")
    var = ((1 - pa) / pa + (1 - pb) / pb - 2 * (p11 - pa * pb) / (pa * pb)) / n
    return float(np.log(pa) - np.log(pb)), float(np.sqrt(max(var, 0.0)))
