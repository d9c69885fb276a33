"""Point statistics of one model's scores on labelled examples, as the records report them.

From a model's scores (or decisions), the labels and the sensitive groups this module
computes (for the backtest, the metric frame and the learner's records; the gates judge
on intervals, :mod:`governance.gates`):

- performance: ROC AUC and log loss (:func:`monitors.performance.roc_auc` and
  :func:`~monitors.performance.log_loss`, the same definitions the monitors export);
- impact per sensitive attribute: each group's selection rate, TPR and FPR with their
  counts, the demographic parity ratio and the equalized odds difference
  (:func:`monitors.impact.demographic_parity_ratio`,
  :func:`~monitors.impact.equalized_odds_difference`: one definition, in monitors/).

A rate is null when its own denominator (decisions, labelled positives, labelled
negatives) is below ``min_group_examples``; such groups are left out of the disparities.

>>> p = performance([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
>>> p.roc_auc, round(p.log_loss, 4), p.positives
(0.75, 0.4723, 2)
>>> s = impact([1, 1, 0, 1], [1, 0, 0, 1], [{"g": "A"}, {"g": "A"}, {"g": "B"}, {"g": "B"}],
...            {"g": ["A", "B"]}, min_group_examples=2)
>>> s["g"].groups["A"].selection_rate, s["g"].groups["B"].selection_rate
(1.0, 0.5)
>>> s["g"].demographic_parity_ratio
0.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from governance.records import GroupRates, ImpactStats, PerformanceStats
from monitors.config import OTHER_GROUP, UNKNOWN_GROUP
from monitors.impact import demographic_parity_ratio, equalized_odds_difference, group_of
from monitors.performance import log_loss, roc_auc

NAN = float("nan")


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def bounded_group(value: object, groups: Sequence[str]) -> str:
    """The bounded group of a value; the reserved ``other``/``unknown`` pass through.

    >>> [bounded_group(v, ["A"]) for v in ("A", "Z", None, "other", "unknown")]
    ['A', 'other', 'unknown', 'other', 'unknown']
    """
    if value in (OTHER_GROUP, UNKNOWN_GROUP):
        return str(value)
    return group_of(value, groups)


def performance(scores: Sequence[float], labels: Sequence[int]) -> PerformanceStats:
    """ROC AUC and log loss of scores against labels, with the class counts."""
    positives = int(sum(labels))
    return PerformanceStats(
        roc_auc=_none_if_nan(roc_auc(scores, labels)) if len(labels) else None,
        log_loss=_none_if_nan(log_loss(scores, labels)),
        examples=len(labels), positives=positives, negatives=len(labels) - positives)


def _rate(numerator: int, denominator: int, minimum: int) -> float:
    return numerator / denominator if denominator >= minimum and denominator > 0 else NAN


def impact(decisions: Sequence[int], labels: Sequence[int],
           groups: Sequence[Mapping[str, str]], attributes: Mapping[str, Sequence[str]],
           min_group_examples: int) -> dict[str, ImpactStats]:
    """Per attribute: every configured group (and any other group seen), its counts and
    rates, the demographic parity ratio and the equalized odds difference."""
    out: dict[str, ImpactStats] = {}
    for attribute, configured in attributes.items():
        # examples, selected, positives, negatives, tp, fp
        counts: dict[str, list[int]] = {g: [0] * 6 for g in configured}
        for decision, label, g in zip(decisions, labels, groups, strict=True):
            row = counts.get(g.get(attribute))  # type: ignore[arg-type]
            if row is None:  # not yet a known bounded group: bound it
                row = counts.setdefault(bounded_group(g.get(attribute), configured), [0] * 6)
            row[0] += 1
            row[1] += decision
            row[2] += label
            row[3] += 1 - label
            row[4] += decision & label
            row[5] += decision & (1 - label)
        m = min_group_examples
        rates = {g: (_rate(r[1], r[0], m), _rate(r[4], r[2], m), _rate(r[5], r[3], m))
                 for g, r in counts.items()}
        out[attribute] = ImpactStats(
            groups={g: GroupRates(
                examples=r[0], selected=r[1], positives=r[2], negatives=r[3],
                true_positives=r[4], false_positives=r[5],
                selection_rate=_none_if_nan(rates[g][0]),
                true_positive_rate=_none_if_nan(rates[g][1]),
                false_positive_rate=_none_if_nan(rates[g][2]))
                for g, r in counts.items()},
            demographic_parity_ratio=_none_if_nan(
                demographic_parity_ratio({g: r[0] for g, r in rates.items()})),
            equalized_odds_difference=_none_if_nan(equalized_odds_difference(
                {g: r[1] for g, r in rates.items()}, {g: r[2] for g, r in rates.items()})),
        )
    return out

