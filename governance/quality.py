"""How well a model ranks and how well it is calibrated within each group (reported only).

Per-group AUC and expected calibration error are shown beside the gates so a reviewer sees
whether a model serves one group worse; they are not gated by default (each would need its
own bound and its own share of the error budget).

- ``roc_auc``: the area under the ROC curve within the group (ties count one half); None
  with fewer than two positives or two negatives.
- ``calibration_error``: expected calibration error over ten equal-width score bins,
  ``sum_b (n_b / n) * |mean score_b - positive rate_b|`` (Naeini et al., 2015).

>>> import numpy as np
>>> q = group_quality(np.array([.1, .2, .8, .9]), np.array([0, 0, 1, 1]),
...                   *group_index(np.array(["A", "A", "A", "A"], dtype=object)))
>>> q["A"].roc_auc, round(q["A"].calibration_error, 2), q["A"].examples
(1.0, 0.15, 4)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from governance.paired import midranks

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class GroupQuality:
    examples: int
    positives: int
    roc_auc: float | None
    calibration_error: float | None


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """AUC by midranks (Mann-Whitney), None without two of each class."""
    positive = labels.astype(bool)
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        return None
    ranks = midranks(scores)
    return float((ranks[positive].sum() - m * (m + 1) / 2) / (m * n))


def calibration_error(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Expected calibration error over ten equal-width bins (None when empty)."""
    if len(scores) == 0:
        return None
    bins = np.minimum((scores * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    score_sums = np.bincount(bins, weights=scores, minlength=CALIBRATION_BINS)
    label_sums = np.bincount(bins, weights=labels, minlength=CALIBRATION_BINS)
    return float(np.abs(score_sums - label_sums).sum() / len(scores))


def group_index(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The distinct groups (sorted, as text) and each example's group number.

    >>> group_index(np.array(["B", "A", "B"], dtype=object))
    (['A', 'B'], array([1, 0, 1]))
    """
    first_seen: dict[object, int] = {}
    codes = np.fromiter((first_seen.setdefault(v, len(first_seen)) for v in values),
                        dtype=np.int64, count=len(values))
    texts = [str(v) for v in first_seen]
    order = sorted(range(len(texts)), key=texts.__getitem__)
    new_code = np.empty(len(texts), dtype=np.int64)
    new_code[order] = np.arange(len(texts))
    return [texts[k] for k in order], new_code[codes]


def group_quality(scores: np.ndarray, labels: np.ndarray, names: list[str],
                  index: np.ndarray) -> dict[str, GroupQuality]:
    """Each group's size, positives, AUC and calibration error (groups from
    :func:`group_index`)."""
    out = {}
    for k, g in enumerate(names):
        mask = index == k
        s, y = scores[mask], labels[mask]
        out[g] = GroupQuality(examples=int(mask.sum()), positives=int(y.sum()),
                              roc_auc=roc_auc(s, y), calibration_error=calibration_error(s, y))
    return out
