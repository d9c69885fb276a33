"""Prequential evaluation: a candidate and the champion on the same recent examples.

Every example in the window carries, for each of the two models, the score that model
gave (or would have given) *before it learned that example*: for the candidate, the
learner's score just before learning it (prequential, "test then train", Dawid 1984);
for the champion, the score it gave at scoring time. From those scores, the labels and
the sensitive groups this module computes, per model:

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

from governance.config import PromotionConfig
from governance.gates import overall
from governance.point_gates import judge_point_estimates
from governance.records import Evaluation, GroupRates, ImpactStats, PerformanceStats
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


def compare(*, candidate: str, champion: str | None,
            candidate_scores: Sequence[float], candidate_decisions: Sequence[int],
            champion_scores: Sequence[float], champion_decisions: Sequence[int],
            labels: Sequence[int], groups: Sequence[Mapping[str, str]],
            attributes: Mapping[str, Sequence[str]], config: PromotionConfig,
            offsets: tuple[int | None, int | None] = (None, None),
            champion_scores_served: int = 0) -> Evaluation:
    """Evaluate a candidate against the champion on the same examples and judge the gates.

    The gates (:func:`governance.point_gates.judge_point_estimates`) look at the
    candidate's impact and at the candidate's performance relative to the champion's.
    """
    n = len(labels)
    cand_perf = performance(candidate_scores, labels)
    champ_perf = performance(champion_scores, labels)
    cand_impact = impact(candidate_decisions, labels, groups, attributes,
                         config.min_group_examples)
    champ_impact = impact(champion_decisions, labels, groups, attributes,
                          config.min_group_examples)
    gates = judge_point_estimates(cand_perf, champ_perf, cand_impact, champ_impact, config)
    return Evaluation(
        candidate=candidate, champion=champion, examples=n,
        from_offset=offsets[0], to_offset=offsets[1],
        champion_scores_served=champion_scores_served,
        champion_scores_recomputed=n - champion_scores_served,
        candidate_performance=cand_perf, champion_performance=champ_perf,
        candidate_impact=cand_impact, champion_impact=champ_impact,
        gates=gates, outcome=overall(gates))
