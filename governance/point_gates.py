"""The old promotion gates on point estimates (kept until the learner judges on evidence).

Superseded by :mod:`governance.gates` (paired evidence, confidence bounds, sequential
looks): these compare point estimates with fixed margins, which a simulation showed fails
fair candidates and passes unfair ones far too often (issue 14). Four gates, every one
recorded with the value judged, the bound, the champion's value and the sample sizes
behind it:

- ``roc_auc``: candidate AUC >= champion AUC - ``roc_auc_margin``;
- ``log_loss``: candidate log loss <= champion log loss + ``log_loss_margin``;
  both hold when the window has fewer than ``min_label_examples`` positives or negatives;
- ``demographic_parity_ratio`` per sensitive attribute: >= ``parity_ratio_min``;
- ``equalized_odds_difference`` per sensitive attribute: <= ``equalized_odds_max``.

An impact gate is judged on the groups with enough examples. A failure among those is a
failure whatever the small groups would show (harm seen is harm). Otherwise, a group below
``min_group_examples`` makes the gate hold (``small_groups: hold``, the default), and so
does having fewer than two groups to compare. The overall outcome is ``fail`` if any gate
fails, else ``hold`` if any holds, else ``pass``: a hold never promotes.

>>> from governance.gates import overall
>>> from governance.records import GateVerdict
>>> overall([GateVerdict(gate="roc_auc", outcome="pass", value=.8, threshold=.7, detail=""),
...          GateVerdict(gate="log_loss", outcome="hold", value=None, threshold=None,
...                      detail="")]).value
'hold'
"""

from __future__ import annotations

from collections.abc import Mapping

from governance.config import PromotionConfig
from governance.records import GateOutcome, GateVerdict, ImpactStats, PerformanceStats


def _performance_gates(cand: PerformanceStats, champ: PerformanceStats,
                       config: PromotionConfig) -> list[GateVerdict]:
    sizes = {"examples": cand.examples, "positives": cand.positives,
             "negatives": cand.negatives}
    short = min(cand.positives, cand.negatives) < config.min_label_examples
    out = []
    for gate, value, champion, margin, sign in (
        ("roc_auc", cand.roc_auc, champ.roc_auc, config.roc_auc_margin, -1),
        ("log_loss", cand.log_loss, champ.log_loss, config.log_loss_margin, +1),
    ):
        threshold = None if champion is None else champion + sign * margin
        if short or value is None or threshold is None:
            outcome = GateOutcome.HOLD
            detail = (f"needs {config.min_label_examples} positives and negatives, has "
                      f"{cand.positives} and {cand.negatives}")
        else:
            ok = value >= threshold if sign < 0 else value <= threshold
            outcome = GateOutcome.PASS if ok else GateOutcome.FAIL
            bound = ">=" if sign < 0 else "<="
            detail = (f"candidate {value:.4f} {'' if ok else 'not '}{bound} {threshold:.4f} "
                      f"(champion {champion:.4f} {'-' if sign < 0 else '+'} {margin})")
        out.append(GateVerdict(gate=gate, outcome=outcome, value=value, threshold=threshold,
                               champion_value=champion, sample_sizes=sizes, detail=detail))
    return out


def _impact_gate(gate: str, attribute: str, value: float | None,
                 champion_value: float | None, small: dict[str, int],
                 sizes: dict[str, int], config: PromotionConfig) -> GateVerdict:
    at_least = gate == "demographic_parity_ratio"
    bound = config.parity_ratio_min if at_least else config.equalized_odds_max
    failed = value is not None and (value < bound if at_least else value > bound)
    if failed:
        outcome = GateOutcome.FAIL
        detail = f"{value:.4f} {'<' if at_least else '>'} {bound} over the groups judged"
    elif small and config.small_groups == "hold":
        outcome = GateOutcome.HOLD
        detail = (f"groups below {config.min_group_examples} examples: "
                  + ", ".join(f"{g} ({n})" for g, n in sorted(small.items())))
    elif value is None:
        outcome = GateOutcome.HOLD
        detail = "fewer than two groups with enough examples to compare"
    else:
        outcome = GateOutcome.PASS
        detail = f"{value:.4f} {'>=' if at_least else '<='} {bound}"
        if small:
            detail += f" (excluded small groups: {', '.join(sorted(small))})"
    return GateVerdict(gate=gate, attribute=attribute, outcome=outcome,  # type: ignore[arg-type]
                       value=value, threshold=bound, champion_value=champion_value,
                       sample_sizes=sizes, detail=detail)


def _impact_gates(attribute: str, cand: ImpactStats, champ: ImpactStats | None,
                  config: PromotionConfig) -> list[GateVerdict]:
    m = config.min_group_examples
    groups = cand.groups
    small_sel = {g: r.examples for g, r in groups.items() if r.examples < m}
    small_eo = {g: min(r.positives, r.negatives) for g, r in groups.items()
                if r.positives < m or r.negatives < m}
    return [
        _impact_gate("demographic_parity_ratio", attribute, cand.demographic_parity_ratio,
                     champ.demographic_parity_ratio if champ else None, small_sel,
                     {g: r.examples for g, r in groups.items()}, config),
        _impact_gate("equalized_odds_difference", attribute, cand.equalized_odds_difference,
                     champ.equalized_odds_difference if champ else None, small_eo,
                     {f"{g}.{k}": n for g, r in groups.items()
                      for k, n in (("positives", r.positives), ("negatives", r.negatives))},
                     config),
    ]


def judge_point_estimates(cand_perf: PerformanceStats, champ_perf: PerformanceStats,
          cand_impact: Mapping[str, ImpactStats], champ_impact: Mapping[str, ImpactStats],
          config: PromotionConfig) -> list[GateVerdict]:
    """Every gate's verdict: performance first, then two impact gates per attribute."""
    gates = _performance_gates(cand_perf, champ_perf, config)
    for attribute, stats in cand_impact.items():
        gates += _impact_gates(attribute, stats, champ_impact.get(attribute), config)
    return gates
