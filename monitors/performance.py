"""Model performance on delayed labels: per model version, over the most recent labels.

For each model version the last ``window_labels`` joined labels are kept (a bounded
deque of ``(score, decision, label)``); ROC AUC, log loss and accuracy are computed over
them exactly, at refresh time, never per label. ROC AUC is the Mann-Whitney U statistic
divided by ``n_pos x n_neg`` (Hanley & McNeil 1982) with tied scores given average ranks,
i.e. the probability that a random positive scores above a random negative, ties
counting one half. Log loss clips scores to ``[1e-15, 1 - 1e-15]``.

A River ADWIN detector (Bifet & Gavaldà 2007, "Learning from time-changing data with
adaptive windowing") watches the 0/1 error stream (``decision != label``) across all
versions; each detection (a significant change of the error rate, either way) is counted.

>>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
0.75
>>> roc_auc([0.5, 0.5], [0, 1])                       # a tie counts one half
0.5
>>> round(log_loss([0.9, 0.2], [1, 0]), 4)            # -(ln .9 + ln .8) / 2
0.1643
>>> accuracy([1, 0, 1], [1, 1, 1])
0.6666666666666666
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from monitors.config import PerformanceConfig

NAN = float("nan")
LOG_LOSS_CLIP = 1e-15


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Exact ROC AUC with average ranks for ties; NaN unless both classes are present."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return NAN
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # 1-based rank, averaged over ties
    rank_sum = float(average_rank[inverse][y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Mean negative log-likelihood of the labels under the scores; NaN if empty."""
    if len(scores) == 0:
        return NAN
    p = np.clip(np.asarray(scores, dtype=np.float64), LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def accuracy(decisions: Sequence[int], labels: Sequence[int]) -> float:
    """Share of decisions equal to their label; NaN if empty."""
    if len(decisions) == 0:
        return NAN
    return float(np.mean(np.asarray(decisions) == np.asarray(labels)))


@dataclass(frozen=True)
class VersionStats:
    """One model version's performance over its recent labels (NaN below min_labels)."""

    roc_auc: float
    log_loss: float
    accuracy: float
    labels: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PerformanceMonitor:
    """Recent labelled predictions per model version, plus ADWIN on the error stream."""

    def __init__(self, config: PerformanceConfig) -> None:
        self.config = config
        self._versions: OrderedDict[str, deque[tuple[float, int, int]]] = OrderedDict()
        self._detector: Any = None
        self.detections = 0

    @property
    def detector(self) -> Any:
        """River's ADWIN, made at the first labelled prediction: River's package imports
        take seconds, which a scorer's restart (imports on its critical path) and
        ``monitors.config`` (read by every CLI command) should not pay for."""
        if self._detector is None:
            from river.drift import ADWIN

            self._detector = ADWIN(delta=self.config.adwin_delta)
        return self._detector

    def observe(self, *, score: float, decision: int, label: int, model_version: str) -> bool:
        """Record one labelled prediction; True if ADWIN detected a change of error rate."""
        window = self._versions.get(model_version)
        if window is None:
            window = self._versions[model_version] = deque(maxlen=self.config.window_labels)
            while len(self._versions) > self.config.max_model_versions:
                self._versions.popitem(last=False)
        self._versions.move_to_end(model_version)
        window.append((float(score), int(decision), int(label)))
        self.detector.update(int(decision != label))
        if self.detector.drift_detected:
            self.detections += 1
            return True
        return False

    def window(self, model_version: str) -> list[tuple[float, int, int]]:
        """A version's recent labelled predictions, ``(score, decision, label)``, oldest first."""
        return list(self._versions.get(model_version, ()))

    @property
    def versions(self) -> list[str]:
        """Tracked versions, least recently labelled first."""
        return list(self._versions)

    @property
    def error_ratio(self) -> float:
        """ADWIN's estimate of the current error rate (NaN before any label)."""
        detector = self._detector
        return float(detector.estimation) if detector is not None and detector.width else NAN

    def statistics(self) -> dict[str, VersionStats]:
        out: dict[str, VersionStats] = {}
        for version, window in self._versions.items():
            n = len(window)
            if n < self.config.min_labels:
                out[version] = VersionStats(NAN, NAN, NAN, n)
                continue
            scores, decisions, labels = (list(column) for column in zip(*window, strict=True))
            out[version] = VersionStats(
                roc_auc=roc_auc(scores, labels),
                log_loss=log_loss(scores, labels),
                accuracy=accuracy(decisions, labels),
                labels=n,
            )
        return out
