"""Promotion gates on evidence: pass, fail or hold, each with its interval and error rate.

A candidate is judged on :class:`~governance.evidence.PairedEvidence` (the same events,
scored by both frozen models at event time) at the looks of a fixed schedule
(:func:`look_at`; :mod:`governance.sequential`). At look ``k`` of ``K`` every gate is one
of three outcomes:

- ``fail``: the interval shows harm beyond the bound;
- ``pass``: the interval shows the bound met (and, for impact, no worse than the champion
  by ``impact_margin``);
- ``hold``: neither yet; collect more. At the final look a hold becomes ``fail``, named
  ``inconclusive at the final look`` in its detail: what is not shown is not promoted.

Gates (docs/governance.md, "Gates on evidence", derives every level):

- ``roc_auc``: paired non-inferiority, DeLong's variance of the AUC difference: pass when
  the lower bound of ``AUC_candidate - AUC_champion`` is at least ``-roc_auc_margin``.
- ``log_loss``: the mean paired log-loss difference: pass when its upper bound is at most
  ``log_loss_margin``.
- ``demographic_parity_ratio`` per attribute, on the favourable outcome: for every pair of
  groups, the interval of the log ratio of their favourable-decision rates lies within
  ``+-log(1/parity_ratio_min)`` (so min/max over groups is at least the bound).
- ``equalized_odds_difference`` per attribute: for every pair of groups, the intervals of
  the gap in favourable rate among labelled positives (TPR) and among negatives (FPR) lie
  within ``+-equalized_odds_max``.

Error rates. Pass tests are one-sided at ``false_promotion_rate / K`` per look: a
candidate that violates a gate passes it, over all looks, with probability at most
``false_promotion_rate``; promotion needs every gate and every pair of groups to pass
(an intersection-union test), so that is also the false-promotion rate of the candidate.
Fail tests use ``false_failure_rate / (K * S)`` per statistic and look, ``S`` the number of
statistics that can fail (2 + 3 per pair of groups per attribute): a candidate that meets
every bound fails on any of them, at any look, with probability at most
``false_failure_rate``. Intervals are closed forms: a rebuild replays a verdict bit for bit
(``evidence.seed`` is not needed by any of them).

>>> import numpy as np
>>> from governance.evidence import PairedEvidence
>>> rng = np.random.default_rng(1); n = 1000
>>> x = rng.normal(size=n); y = (rng.random(n) < 1 / (1 + np.exp(-2 * x + 0.5))).astype(np.int8)
>>> s = 1 / (1 + np.exp(-2 * x + 0.5))
>>> ev = PairedEvidence(labels=y, champion_scores=s, candidate_scores=s,
...                     groups={"group": np.where(rng.random(n) < .7, "A", "B").astype(object)},
...                     champion_threshold=.5, candidate_threshold=.5,
...                     favourable="below_threshold", seed=0)
>>> look_at(1000, PromotionConfig()), look_at(1001, PromotionConfig())
(1, None)
>>> j = judge(ev, PromotionConfig(), look=1)
>>> [(g.gate, g.outcome.value) for g in j.gates]  # doctest: +NORMALIZE_WHITESPACE
[('roc_auc', 'pass'), ('log_loss', 'pass'), ('demographic_parity_ratio', 'pass'),
 ('equalized_odds_difference', 'hold')]
>>> j.outcome.value, j.final
('hold', False)
>>> nobody = PairedEvidence(**{**ev.__dict__, "candidate_scores": np.ones(n)})
>>> judge(nobody, PromotionConfig(), look=5).outcome.value     # selects no one: never passes
'fail'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from governance.config import PromotionConfig
from governance.evidence import PairedEvidence
from governance.intervals import log_ratio, newcombe_difference, z_of
from governance.paired import (
    log_loss_difference,
    log_losses,
    log_proportion_difference,
    paired_auc,
    proportion_difference,
)
from governance.quality import GroupQuality, group_index, group_quality
from governance.records import GateOutcome, GateVerdict
from governance.sequential import look_number, per_look_level

PASS, FAIL, HOLD = GateOutcome.PASS, GateOutcome.FAIL, GateOutcome.HOLD


def overall(gates: Sequence[GateVerdict]) -> GateOutcome:
    """fail if any gate fails, else hold if any holds, else pass (pass if no gates).

    >>> overall([GateVerdict(gate="roc_auc", outcome="pass", value=.8, threshold=.7,
    ...                      detail=""),
    ...          GateVerdict(gate="log_loss", outcome="hold", value=None, threshold=None,
    ...                      detail="")]).value
    'hold'
    """
    outcomes = {g.outcome for g in gates}
    if FAIL in outcomes:
        return FAIL
    if HOLD in outcomes:
        return HOLD
    return PASS


@dataclass(frozen=True)
class Judgement:
    """Every gate's verdict at one look, the overall outcome, and whether it was final.

    ``candidate_quality`` and ``champion_quality`` (attribute -> group -> quality) report
    each group's AUC and calibration error; they are shown, not gated.
    """

    gates: list[GateVerdict]
    outcome: GateOutcome
    final: bool
    candidate_quality: dict[str, dict[str, GroupQuality]] = field(default_factory=dict)
    champion_quality: dict[str, dict[str, GroupQuality]] = field(default_factory=dict)


def look_at(examples: int, policy: PromotionConfig) -> int | None:
    """The 1-based look due when the candidate has exactly ``examples`` paired examples,
    else None. The learner calls it after each new paired example and judges when due."""
    return look_number(examples, policy.look_sizes())


@dataclass(frozen=True)
class Levels:
    """The error each test may spend at one look (see the module doc)."""

    look: int
    looks: int
    pass_alpha: float      # one-sided, per pass test
    fail_alpha: float      # per statistic, split over its two ends
    statistics: int

    @property
    def final(self) -> bool:
        return self.look == self.looks

    @property
    def z_pass(self) -> float:
        return z_of(self.pass_alpha)

    @property
    def z_fail(self) -> float:
        return z_of(self.fail_alpha / 2)

    def describe(self) -> str:
        return (f"look {self.look} of {self.looks}; pass tests at one-sided "
                f"{self.pass_alpha:.3g}, fail tests at {self.fail_alpha:.3g} "
                f"({self.statistics} statistics)")


def levels(policy: PromotionConfig, look: int, statistics: int) -> Levels:
    """The per-test levels at ``look`` with ``statistics`` statistics that can fail."""
    looks = len(policy.look_sizes())
    if not 1 <= look <= looks:
        raise ValueError(f"look {look} is not one of the policy's {looks} looks")
    return Levels(look=look, looks=looks,
                  pass_alpha=per_look_level(policy.false_promotion_rate, looks=looks),
                  fail_alpha=per_look_level(policy.false_failure_rate,
                                            looks=looks * statistics),
                  statistics=statistics)


def _verdict(gate: str, lv: Levels, outcome: GateOutcome, detail: str, *,
             method: str, attribute: str | None = None, value: float | None = None,
             threshold: float | None = None, champion_value: float | None = None,
             lower: float | None = None, upper: float | None = None,
             sizes: dict[str, int] | None = None, intervals: int = 1) -> GateVerdict:
    """One verdict; ``confidence`` is the pass end's simultaneous coverage over the
    ``intervals`` per-pair intervals it summarises (Bonferroni)."""
    if outcome is HOLD and lv.final:
        outcome, detail = FAIL, f"inconclusive at the final look: {detail}"
    return GateVerdict(
        gate=gate, attribute=attribute, outcome=outcome, value=_finite(value),
        threshold=threshold, champion_value=_finite(champion_value), lower=_finite(lower),
        upper=_finite(upper), confidence=max(0.0, 1 - intervals * lv.pass_alpha),
        method=method, look=lv.look, max_looks=lv.looks, final=lv.final, sample_sizes=sizes or {},
        detail=f"{detail} ({lv.describe()})")


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# ------------------------------------------------------------------------ performance

def _performance(ev: PairedEvidence, policy: PromotionConfig, lv: Levels
                 ) -> list[GateVerdict]:
    y = ev.labels
    m = int(y.sum())
    n = len(y) - m
    sizes = {"examples": len(y), "positives": m, "negatives": n}
    if min(m, n) < max(policy.min_label_examples, 2):
        detail = (f"needs {policy.min_label_examples} positives and negatives, "
                  f"has {m} and {n}")
        return [_verdict(g, lv, HOLD, detail, method="paired", sizes=sizes)
                for g in ("roc_auc", "log_loss")]
    auc_1, auc_0, se = paired_auc(ev.candidate_scores, ev.champion_scores, y)
    d = auc_1 - auc_0
    margin = policy.roc_auc_margin
    outcome, why, lo, hi = _non_inferiority(d, se, margin, lv)
    auc = _verdict(
        "roc_auc", lv, outcome, f"AUC difference {d:+.4f} (SE {se:.4f}); {why}",
        method="DeLong paired AUC difference added to the champion's AUC; lower end at "
               "the pass level, upper end at the fail level",
        value=auc_1, threshold=None if auc_0 is None else auc_0 - margin,
        champion_value=auc_0, lower=None if auc_0 is None else auc_0 + lo,
        upper=None if auc_0 is None else auc_0 + hi, sizes=sizes)
    loss_1 = float(log_losses(ev.candidate_scores, y).mean())
    loss_0 = float(log_losses(ev.champion_scores, y).mean())
    d, se = log_loss_difference(ev.candidate_scores, ev.champion_scores, y)
    margin = policy.log_loss_margin
    outcome, why, lo, hi = _non_inferiority(-d, se, margin, lv)   # a gain is a lower loss
    loss = _verdict(
        "log_loss", lv, outcome, f"log-loss reduction {-d:+.4f} (SE {se:.4f}); {why}",
        method="mean paired log-loss difference (normal) added to the champion's; lower "
               "end at the fail level, upper end at the pass level",
        value=loss_1, threshold=loss_0 + margin, champion_value=loss_0,
        lower=loss_0 - hi, upper=loss_0 - lo, sizes=sizes)
    return [auc, loss]


def _non_inferiority(gain: float, se: float, margin: float, lv: Levels
                     ) -> tuple[GateOutcome, str, float, float]:
    """Non-inferiority of a paired ``gain`` (candidate better when positive): pass when
    its lower bound (pass level) is at least ``-margin``, fail when its upper bound (fail
    level) is below ``-margin``. Returns the outcome, why, and the two bounds."""
    lo, hi = gain - lv.z_pass * se, gain + lv.z_fail * se
    if hi < -margin:
        return FAIL, f"upper bound {hi:+.4f} < -{margin}: worse beyond the margin", lo, hi
    if lo >= -margin:
        return PASS, f"lower bound {lo:+.4f} >= -{margin}: not worse by the margin", lo, hi
    return HOLD, f"interval [{lo:+.4f}, {hi:+.4f}] straddles -{margin}", lo, hi


# ------------------------------------------------------------------------ impact

@dataclass(frozen=True)
class _Attribute:
    """One attribute's groups and the decisions of both models, ready to count."""

    names: list[str]
    index: np.ndarray            # group number per example
    labels: np.ndarray           # bool
    candidate: np.ndarray        # favourable decision (bool) per example
    champion: np.ndarray

    def count(self, where: np.ndarray, of: np.ndarray) -> np.ndarray:
        return np.bincount(self.index[where], weights=of[where].astype(np.float64),
                           minlength=len(self.names)).astype(np.int64)

    def size(self, where: np.ndarray) -> np.ndarray:
        return np.bincount(self.index[where], minlength=len(self.names)).astype(np.int64)


def _attribute(ev: PairedEvidence, names: list[str], index: np.ndarray) -> _Attribute:
    return _Attribute(
        names=names, index=index, labels=ev.labels.astype(bool),
        candidate=ev.favourable_decisions(ev.candidate_scores, ev.candidate_threshold),
        champion=ev.favourable_decisions(ev.champion_scores, ev.champion_threshold))


def _pairs(judged: list[int]) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(len(judged), k=1)
    return np.asarray(judged)[i], np.asarray(judged)[j]


def _degenerate(decisions: np.ndarray) -> str | None:
    if not decisions.any():
        return "gives no one the favourable outcome"
    if decisions.all():
        return "gives everyone the favourable outcome"
    return None


def _blocked(at: _Attribute, small: dict[str, int], judged: list[int],
             policy: PromotionConfig) -> str | None:
    """Why the gate cannot pass whatever the intervals say, or None."""
    if len(at.index) == 0:
        return "no paired examples yet"
    degenerate = _degenerate(at.candidate)
    if degenerate:
        return f"the candidate {degenerate}: degenerate decisions never pass"
    if small and policy.small_groups == "hold":
        return (f"groups below {policy.min_group_examples}: "
                + ", ".join(f"{g} ({n})" for g, n in sorted(small.items())))
    if len(judged) < 2:
        return "fewer than two groups with enough examples to compare"
    return None


def _parity(attribute: str, at: _Attribute, policy: PromotionConfig, lv: Levels
            ) -> GateVerdict:
    everyone = np.ones(len(at.index), dtype=bool)
    n, fav = at.size(everyone), at.count(everyone, at.candidate)
    fav_0 = at.count(everyone, at.champion)
    m = policy.min_group_examples
    small = {at.names[g]: int(min(fav[g], n[g] - fav[g])) for g in range(len(at.names))
             if fav[g] < m or n[g] - fav[g] < m}
    judged = [g for g in range(len(at.names)) if at.names[g] not in small]
    i, j = _pairs(judged)
    shown_groups = judged if len(judged) >= 2 else [g for g in range(len(n)) if n[g] > 0]
    rates, rates_0 = fav / np.maximum(n, 1), fav_0 / np.maximum(n, 1)
    floor = policy.parity_ratio_min
    return _pair_gate(
        "demographic_parity_ratio", attribute, at, policy, lv, small, judged,
        sizes={f"{g}.{k}": int(v) for gi, g in enumerate(at.names)
               for k, v in (("favourable", fav[gi]), ("unfavourable", n[gi] - fav[gi]))},
        intervals=lambda alpha: log_ratio(fav[i], n[i], fav[j], n[j], alpha),
        bound=-math.log(floor), margin=-math.log(1 - policy.impact_margin),
        paired=_parity_paired, to_scale=lambda x: math.exp(-x),
        value=_ratio(rates[shown_groups]) if len(shown_groups) >= 2 else None,
        champion_value=_ratio(rates_0[shown_groups]) if len(shown_groups) >= 2 else None,
        method="log ratio of favourable rates per pair of groups, MOVER on Wilson limits; "
               "lower end at the pass level, upper end at the fail level",
        words={"harm": f"shown below {floor} for a pair of groups",
               "not_shown": f"not yet shown at least {floor} for every pair of groups",
               "champion": f"not yet shown within {policy.impact_margin:.0%} of the "
                           f"champion's ratio for every pair of groups",
               "pass": f"shown at least {floor} for every pair of groups"})


def _pair_gate(gate: str, attribute: str, at: _Attribute, policy: PromotionConfig,
               lv: Levels, small: dict[str, int], judged: list[int], *,
               sizes: dict[str, int],
               intervals: Callable[[float], tuple[np.ndarray, np.ndarray]], bound: float,
               margin: float, paired: Callable[[_Attribute, list[int]],
                                               list[tuple[float, float]]],
               to_scale: Callable[[float], float], value: float | None,
               champion_value: float | None, method: str,
               words: dict[str, str]) -> GateVerdict:
    """An impact gate whose statistic is, per pair of groups, a gap held within
    ``+-bound`` (a log ratio or a difference of rates): fail when a fail-level interval
    lies beyond the bound, pass when every pass-level interval lies within it (and the
    champion comparison holds). ``to_scale`` maps the worst gap to the gate's scale."""
    harm, shown = False, False
    worst_pass = least_fail = None
    count = 1
    if len(judged) >= 2:
        lo_p, hi_p = intervals(lv.pass_alpha)
        count = len(lo_p)
        lo_f, hi_f = intervals(lv.fail_alpha / 2)
        worst_pass = float(np.max(np.maximum(np.abs(lo_p), np.abs(hi_p))))
        least_fail = float(np.max(np.maximum(np.maximum(lo_f, -hi_f), 0.0)))
        harm, shown = least_fail > bound, worst_pass <= bound
    champion_ok, note = _champion_ok(at, judged, margin, bound, lv, paired, intervals)
    blocked = _blocked(at, small, judged, policy)
    if harm:
        outcome, why = FAIL, words["harm"]
    elif blocked:
        outcome, why = HOLD, blocked
    elif not shown:
        outcome, why = HOLD, words["not_shown"]
    elif not champion_ok:
        outcome, why = HOLD, words["champion"]
    else:
        outcome, why = PASS, f"{words['pass']}; {note}"
    ends = [None if e is None else to_scale(e) for e in (worst_pass, least_fail)]
    lower, upper = (min(ends), max(ends)) if None not in ends else (None, None)
    return _verdict(gate, lv, outcome, why, method=method, attribute=attribute,
                    value=value, threshold=to_scale(bound), champion_value=champion_value,
                    lower=lower, upper=upper, sizes=sizes, intervals=count)


def _ratio(rates: np.ndarray) -> float | None:
    top = float(np.max(rates))
    return None if top <= 0 else float(np.min(rates)) / top


def _parity_paired(at: _Attribute, judged: list[int]) -> list[tuple[float, float]]:
    """Per pair of judged groups: the change, candidate minus champion, of the log ratio of
    favourable rates, and its paired standard error. A group where the champion gave no
    one the favourable outcome (its ratio is 0: nothing can be worse) is left out."""
    diff, se = {}, {}
    for g in judged:
        mask = at.index == g
        diff[g], se[g] = log_proportion_difference(at.candidate[mask], at.champion[mask])
    return [(diff[a] - diff[b], math.hypot(se[a], se[b]))
            for a, b in zip(*_pairs(judged), strict=True)
            if at.champion[at.index == a].any() and at.champion[at.index == b].any()]


def _equalized_odds(attribute: str, at: _Attribute, policy: PromotionConfig, lv: Levels
                    ) -> GateVerdict:
    pos, neg = at.labels, ~at.labels
    n_pos, n_neg = at.size(pos), at.size(neg)
    rates = ((at.count(pos, at.candidate), n_pos), (at.count(neg, at.candidate), n_neg))
    rates_0 = ((at.count(pos, at.champion), n_pos), (at.count(neg, at.champion), n_neg))
    m = policy.min_group_examples
    small = {at.names[g]: int(min(n_pos[g], n_neg[g])) for g in range(len(at.names))
             if n_pos[g] < m or n_neg[g] < m}
    judged = [g for g in range(len(at.names)) if at.names[g] not in small]
    i, j = _pairs(judged)

    def intervals(alpha: float) -> tuple[np.ndarray, np.ndarray]:
        ends = [newcombe_difference(x[i], d[i], x[j], d[j], alpha) for x, d in rates]
        return np.concatenate([e[0] for e in ends]), np.concatenate([e[1] for e in ends])

    def largest_gap(of: tuple[tuple[np.ndarray, np.ndarray], ...]) -> float | None:
        if len(judged) < 2:
            return None
        return float(max(np.max(np.abs(x[i] / d[i] - x[j] / d[j])) for x, d in of))

    bound = policy.equalized_odds_max
    return _pair_gate(
        "equalized_odds_difference", attribute, at, policy, lv, small, judged,
        sizes={f"{g}.{k}": int(v) for gi, g in enumerate(at.names)
               for k, v in (("positives", n_pos[gi]), ("negatives", n_neg[gi]))},
        intervals=intervals, bound=bound, margin=policy.impact_margin,
        paired=_odds_paired, to_scale=lambda x: x,
        value=largest_gap(rates), champion_value=largest_gap(rates_0),
        method="gap in favourable rate among positives (TPR) and among negatives (FPR) "
               "per pair of groups, Newcombe hybrid score; upper end at the pass level, "
               "lower end at the fail level",
        words={"harm": f"a TPR or FPR gap shown above {bound} for a pair of groups",
               "not_shown": f"not yet shown every TPR and FPR gap at most {bound}",
               "champion": f"not yet shown every gap within {policy.impact_margin} of "
                           f"the champion's",
               "pass": f"every TPR and FPR gap shown at most {bound}"})


def _odds_paired(at: _Attribute, judged: list[int]) -> list[tuple[float, float]]:
    """Per pair of judged groups, among positives then negatives: the change, candidate
    minus champion, of the gap in favourable rate, and its paired standard error."""
    out = []
    for label in (True, False):
        diff, se = {}, {}
        for g in judged:
            mask = (at.index == g) & (at.labels == label)
            diff[g], se[g] = proportion_difference(at.candidate[mask], at.champion[mask])
        out += [(diff[a] - diff[b], math.hypot(se[a], se[b]))
                for a, b in zip(*_pairs(judged), strict=True)]
    return out


def _champion_ok(at: _Attribute, judged: list[int], margin: float, bound: float,
                 lv: Levels, paired: Callable[[_Attribute, list[int]],
                                              list[tuple[float, float]]],
                 own: Callable[[float], tuple[np.ndarray, np.ndarray]]) -> tuple[bool, str]:
    """Whether the candidate is shown no worse than the champion by ``margin``, for every
    pair of groups: ``|gap_c| <= |gap_0| + margin``. Two sufficient conditions, each at
    half the pass level (so together they spend the pass level once):

    - the candidate's own gap is within ``+-margin`` (then it cannot exceed the champion's
      by more), from ``own(alpha)``, the candidate's per-pair intervals;
    - the paired change ``gap_c - gap_0`` is within ``+-margin`` (triangle inequality:
      ``|gap_c| <= |gap_0| + |gap_c - gap_0|``), from ``paired``.

    Needless when ``margin >= bound`` (the bound then implies it) or when the champion's
    decisions are degenerate (it gives no one, or everyone, the favourable outcome)."""
    if len(judged) < 2:
        return False, "fewer than two groups to compare with the champion"
    if margin >= bound:
        return True, (f"the champion comparison (margin {margin:.3g}) is implied by the "
                      f"bound {bound:.3g}")
    if _degenerate(at.champion):
        return True, "the champion's decisions are degenerate: held to the bound alone"
    alpha = lv.pass_alpha / 2
    lo, hi = own(alpha)
    if bool(np.all((lo >= -margin) & (hi <= margin))):
        return True, f"its own gaps shown within {margin:.3g}, so within that of the champion's"
    z = z_of(alpha)
    if all(abs(d) + z * s <= margin for d, s in paired(at, judged)):
        return True, f"shown within {margin:.3g} of the champion's (paired)"
    return False, ""


# ------------------------------------------------------------------------ judge

def fail_statistics(groups_per_attribute: Sequence[int]) -> int:
    """How many statistics can fail a candidate: AUC and log loss, and per attribute,
    for each pair of its groups, the parity ratio and the TPR and FPR gaps.

    >>> fail_statistics([3]), fail_statistics([2, 4])     # 2 + 3*3; 2 + 3*1 + 3*6
    (11, 23)
    """
    return 2 + sum(3 * (k * (k - 1) // 2) for k in groups_per_attribute)


def judge(evidence: PairedEvidence, policy: PromotionConfig, *, look: int) -> Judgement:
    """Every gate's verdict at ``look`` (1-based, see :func:`look_at`): performance first,
    then parity and equalized odds per attribute (in the evidence's attribute order)."""
    indexed = {a: group_index(values) for a, values in evidence.groups.items()}
    lv = levels(policy, look, fail_statistics([len(n) for n, _ in indexed.values()]))
    gates = _performance(evidence, policy, lv)
    cand_q: dict[str, dict[str, GroupQuality]] = {}
    champ_q: dict[str, dict[str, GroupQuality]] = {}
    for attribute, (names, index) in indexed.items():
        at = _attribute(evidence, names, index)
        gates.append(_parity(attribute, at, policy, lv))
        gates.append(_equalized_odds(attribute, at, policy, lv))
        cand_q[attribute] = group_quality(evidence.candidate_scores, evidence.labels,
                                          names, index)
        champ_q[attribute] = group_quality(evidence.champion_scores, evidence.labels,
                                           names, index)
    return Judgement(gates=gates, outcome=overall(gates), final=lv.final,
                     candidate_quality=cand_q, champion_quality=champ_q)
