"""Group impact: selection rate, TPR and FPR per sensitive group, and their disparities.

Each configured sensitive attribute has a bounded set of groups: the configured values,
``other`` for any other value and ``unknown`` for a missing one (:func:`group_of`). For
each group a ring of time buckets keeps, over the last ``window_seconds``: decisions,
positive decisions, and the confusion matrix of labelled predictions (tp, fp, tn, fn).

- selection rate = positive decisions / decisions (needs ``min_group_size`` decisions)
- TPR = tp / (tp + fn) (needs ``min_group_size`` labelled positives)
- FPR = fp / (fp + tn) (needs ``min_group_size`` labelled negatives)

Below the minimum a rate is NaN and the group is left out of the disparities:

- demographic parity ratio = lowest / highest selection rate over qualifying groups
  (the four-fifths rule reads < 0.8 as adverse impact: EEOC Uniform Guidelines,
  29 CFR 1607.4(D)); 1.0 if every qualifying group's rate is 0; NaN with fewer than two.
- equalized odds difference = the larger of the TPR gap and the FPR gap (highest minus
  lowest over qualifying groups), as in Hardt, Price & Srebro 2016 and fairlearn's
  ``equalized_odds_difference``; NaN when neither rate has two qualifying groups.

>>> demographic_parity_ratio({"A": 0.5, "B": 0.25, "C": float("nan")})
0.5
>>> equalized_odds_difference({"A": 0.9, "B": 0.7}, {"A": 0.1, "B": 0.05})
0.2...
>>> group_of("Z", ["A", "B"]), group_of(None, ["A", "B"]), group_of("A", ["A", "B"])
('other', 'unknown', 'A')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from monitors.buckets import TimeBuckets
from monitors.config import OTHER_GROUP, UNKNOWN_GROUP, ImpactConfig

NAN = float("nan")
#: Confusion-matrix cells, as the ``outcome`` label of streambed_group_outcomes_total.
OUTCOMES = ("tp", "fp", "tn", "fn")
# Columns kept per group in the window.
_DECISIONS, _SELECTED, _TP, _FP, _TN, _FN = range(6)
_WIDTH = 6


def group_of(value: object, groups: Sequence[str]) -> str:
    """The bounded group label of an attribute value."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return UNKNOWN_GROUP
    text = str(value)
    return text if text in groups else OTHER_GROUP


def outcome_of(decision: int, label: int) -> str:
    """tp, fp, tn or fn for a decision and its label."""
    return ("tp" if label else "fp") if decision else ("fn" if label else "tn")


def _qualifying(rates: Mapping[str, float]) -> list[float]:
    return [r for r in rates.values() if not math.isnan(r)]


def demographic_parity_ratio(selection_rates: Mapping[str, float]) -> float:
    """Lowest over highest selection rate among groups whose rate is not NaN."""
    rates = _qualifying(selection_rates)
    if len(rates) < 2:
        return NAN
    highest = max(rates)
    return 1.0 if highest == 0 else min(rates) / highest


def equalized_odds_difference(tpr: Mapping[str, float], fpr: Mapping[str, float]) -> float:
    """Largest gap in TPR or FPR among groups whose rate is not NaN."""
    gaps = [max(r) - min(r) for r in (_qualifying(tpr), _qualifying(fpr)) if len(r) >= 2]
    return max(gaps) if gaps else NAN


def _rate(numerator: float, denominator: float, minimum: int) -> float:
    return float(numerator / denominator) if denominator >= minimum else NAN


@dataclass(frozen=True)
class GroupStats:
    """One group's window counts and rates (NaN below the minimum sample)."""

    decisions: int
    positives: int
    negatives: int
    selection_rate: float
    true_positive_rate: float
    false_positive_rate: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AttributeStats:
    groups: dict[str, GroupStats]
    demographic_parity_ratio: float
    equalized_odds_difference: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": {g: s.to_dict() for g, s in self.groups.items()},
            "demographic_parity_ratio": self.demographic_parity_ratio,
            "equalized_odds_difference": self.equalized_odds_difference,
        }


class AttributeImpact:
    """Windowed decision and outcome counts for the groups of one sensitive attribute.

    >>> from monitors.config import ImpactConfig
    >>> a = AttributeImpact(["A", "B"], ImpactConfig(min_group_size=2))
    >>> for group, decision in [("A", 1), ("A", 1), ("B", 1), ("B", 0), (None, 1)]:
    ...     a.on_decision(a.group(group), decision, now=0.0)
    >>> s = a.statistics(now=0.0)
    >>> s.groups["B"].selection_rate, s.groups["unknown"].selection_rate
    (0.5, nan)
    >>> s.demographic_parity_ratio
    0.5
    """

    def __init__(self, groups: Sequence[str], config: ImpactConfig) -> None:
        self.configured = list(groups)
        self.groups = [*groups, OTHER_GROUP, UNKNOWN_GROUP]
        self._index = {g: i for i, g in enumerate(self.groups)}
        self.config = config
        self.window = TimeBuckets(
            config.window_seconds, config.window_buckets, _WIDTH * len(self.groups)
        )

    def group(self, value: object) -> str:
        return group_of(value, self.configured)

    def on_decision(self, group: str, decision: int, now: float) -> None:
        base = _WIDTH * self._index[group]
        columns = [base + _DECISIONS, base + _SELECTED] if decision else [base + _DECISIONS]
        self.window.add_many(now, columns)

    def on_decisions(self, groups: list[str], decisions: list[int], now: float) -> None:
        """A batch of decisions at ``now`` (the same as :meth:`on_decision` one by one)."""
        index = np.fromiter((self._index[g] for g in groups), dtype=np.int64, count=len(groups))
        chosen = np.asarray(decisions, dtype=bool)
        counts = np.zeros(_WIDTH * len(self.groups))
        counts += np.bincount(_WIDTH * index + _DECISIONS, minlength=len(counts))
        counts += np.bincount(_WIDTH * index[chosen] + _SELECTED, minlength=len(counts))
        self.window.add_counts(now, counts)

    def on_outcome(self, group: str, outcome: str, now: float) -> None:
        column = {"tp": _TP, "fp": _FP, "tn": _TN, "fn": _FN}[outcome]
        self.window.add(now, _WIDTH * self._index[group] + column)

    def statistics(self, now: float) -> AttributeStats:
        totals = self.window.totals(now).reshape(len(self.groups), _WIDTH)
        minimum = self.config.min_group_size
        groups: dict[str, GroupStats] = {}
        for name, row in zip(self.groups, totals, strict=True):
            positives = row[_TP] + row[_FN]
            negatives = row[_FP] + row[_TN]
            groups[name] = GroupStats(
                decisions=int(row[_DECISIONS]),
                positives=int(positives),
                negatives=int(negatives),
                selection_rate=_rate(row[_SELECTED], row[_DECISIONS], minimum),
                true_positive_rate=_rate(row[_TP], positives, minimum),
                false_positive_rate=_rate(row[_FP], negatives, minimum),
            )
        return AttributeStats(
            groups=groups,
            demographic_parity_ratio=demographic_parity_ratio(
                {g: s.selection_rate for g, s in groups.items()}
            ),
            equalized_odds_difference=equalized_odds_difference(
                {g: s.true_positive_rate for g, s in groups.items()},
                {g: s.false_positive_rate for g, s in groups.items()},
            ),
        )
