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
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from governance.config import PromotionConfig
from governance.evidence import PairedEvidence
from governance.intervals import log_ratio, newcombe_difference, z_of
from governance.paired import (
    auc_difference,
    log_loss_difference,
    log_losses,
    log_proportion_difference,
    proportion_difference,
)
from governance.quality import GroupQuality, group_quality, roc_auc
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
             sizes: dict[str, int] | None = None) -> GateVerdict:
    if outcome is HOLD and lv.final:
        outcome, detail = FAIL, f"inconclusive at the final look: {detail}"
    return GateVerdict(
        gate=gate, attribute=attribute, outcome=outcome, value=_finite(value),
        threshold=threshold, champion_value=_finite(champion_value), lower=_finite(lower),
        upper=_finite(upper), confidence=1 - lv.pass_alpha, method=method, look=lv.look,
        max_looks=lv.looks, final=lv.final, sample_sizes=sizes or {},
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
    auc_1, auc_0 = roc_auc(ev.candidate_scores, y), roc_auc(ev.champion_scores, y)
    d, se = auc_difference(ev.candidate_scores, ev.champion_scores, y)
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


def _attribute(ev: PairedEvidence, values: np.ndarray) -> _Attribute:
    names, index = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return _Attribute(
        names=names.tolist(), index=index, labels=ev.labels.astype(bool),
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


def _impact_outcome(harm: bool, blocked: str | None, shown: bool, champion_ok: bool,
                    why: dict[str, str]) -> tuple[GateOutcome, str]:
    if harm:
        return FAIL, why["harm"]
    if blocked:
        return HOLD, blocked
    if not shown:
        return HOLD, why["not_shown"]
    if not champion_ok:
        return HOLD, why["champion"]
    return PASS, why["pass"]


def _blocked(at: _Attribute, small: dict[str, int], judged: list[int],
             policy: PromotionConfig) -> str | None:
    """Why the gate cannot pass whatever the intervals say, or None."""
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
    sizes = {f"{g}.{k}": int(v) for gi, g in enumerate(at.names)
             for k, v in (("favourable", fav[gi]), ("unfavourable", n[gi] - fav[gi]))}
    bound = -math.log(policy.parity_ratio_min)
    method = ("log ratio of favourable rates per pair of groups, MOVER on Wilson limits; "
              "lower end at the pass level, upper end at the fail level")
    rates = np.where(n > 0, fav / np.maximum(n, 1), np.nan)
    rates_0 = np.where(n > 0, fav_0 / np.maximum(n, 1), np.nan)
    shown_groups = judged if len(judged) >= 2 else [g for g in range(len(n)) if n[g] > 0]
    value = _ratio(rates[shown_groups]) if len(shown_groups) >= 2 else None
    champion_value = _ratio(rates_0[shown_groups]) if len(shown_groups) >= 2 else None
    harm, shown, champion_ok = False, False, False
    lower = upper = None
    if len(judged) >= 2:
        i, j = _pairs(judged)
        lo_p, hi_p = log_ratio(fav[i], n[i], fav[j], n[j], lv.pass_alpha)
        lo_f, hi_f = log_ratio(fav[i], n[i], fav[j], n[j], lv.fail_alpha / 2)
        harm = bool(np.any((lo_f > bound) | (hi_f < -bound)))
        shown = bool(np.all((lo_p >= -bound) & (hi_p <= bound)))
        lower = math.exp(-float(np.max(np.maximum(np.abs(lo_p), np.abs(hi_p)))))
        upper = math.exp(-float(np.max(np.maximum(np.maximum(lo_f, -hi_f), 0.0))))
        champion_ok = _champion_parity_ok(at, judged, policy, lv)
    margin = -math.log(1 - policy.impact_margin)
    outcome, why = _impact_outcome(harm, _blocked(at, small, judged, policy), shown,
                                   champion_ok, {
        "harm": f"shown below {policy.parity_ratio_min} for a pair of groups",
        "not_shown": f"not yet shown at least {policy.parity_ratio_min} for every pair",
        "champion": f"not yet shown within {policy.impact_margin:.0%} of the champion's "
                    f"ratio for every pair (paired log-rate differences, +-{margin:.3f})",
        "pass": f"shown at least {policy.parity_ratio_min} for every pair of groups and "
                f"within {policy.impact_margin:.0%} of the champion's"})
    return _verdict("demographic_parity_ratio", lv, outcome, why, method=method,
                    attribute=attribute, value=value, threshold=policy.parity_ratio_min,
                    champion_value=champion_value, lower=lower, upper=upper, sizes=sizes)


def _ratio(rates: np.ndarray) -> float | None:
    top = float(np.max(rates))
    return None if top <= 0 else float(np.min(rates)) / top


def _champion_parity_ok(at: _Attribute, judged: list[int], policy: PromotionConfig,
                        lv: Levels) -> bool:
    """Paired test that, for every pair of judged groups, the candidate's log ratio is
    within ``-log(1 - impact_margin)`` of the champion's: by the triangle inequality the
    candidate's parity ratio is then at least ``(1 - impact_margin)`` times the champion's.
    A champion with degenerate decisions (or none favourable in a group: ratio 0) cannot
    be worse than: the candidate is held to the bound alone."""
    if _degenerate(at.champion):
        return True
    margin = -math.log(1 - policy.impact_margin)
    diff, se = {}, {}
    for g in judged:
        mask = at.index == g
        if not at.champion[mask].any():
            diff[g], se[g] = 0.0, math.inf    # the champion's ratio is 0 here
            continue
        diff[g], se[g] = log_proportion_difference(at.candidate[mask], at.champion[mask])
    for a, b in zip(*_pairs(judged), strict=True):
        if math.isinf(se[a]) or math.isinf(se[b]):
            continue
        d, s = diff[a] - diff[b], math.hypot(se[a], se[b])
        if abs(d) + lv.z_pass * s > margin:
            return False
    return True


def _equalized_odds(attribute: str, at: _Attribute, policy: PromotionConfig, lv: Levels
                    ) -> GateVerdict:
    pos, neg = at.labels, ~at.labels
    n_pos, n_neg = at.size(pos), at.size(neg)
    tp, fp = at.count(pos, at.candidate), at.count(neg, at.candidate)
    tp_0, fp_0 = at.count(pos, at.champion), at.count(neg, at.champion)
    m = policy.min_group_examples
    small = {at.names[g]: int(min(n_pos[g], n_neg[g])) for g in range(len(at.names))
             if n_pos[g] < m or n_neg[g] < m}
    judged = [g for g in range(len(at.names)) if at.names[g] not in small]
    sizes = {f"{g}.{k}": int(v) for gi, g in enumerate(at.names)
             for k, v in (("positives", n_pos[gi]), ("negatives", n_neg[gi]))}
    bound = policy.equalized_odds_max
    method = ("gap in favourable rate among positives and among negatives per pair of "
              "groups, Newcombe hybrid score; upper end at the pass level, lower end at "
              "the fail level")
    value = champion_value = lower = upper = None
    harm, shown, champion_ok = False, False, False
    if len(judged) >= 2:
        i, j = _pairs(judged)
        gaps, gaps_0, pass_ends, fail_dist = [], [], [], []
        for x, x0, d in ((tp, tp_0, n_pos), (fp, fp_0, n_neg)):
            gaps.append(np.abs(x[i] / d[i] - x[j] / d[j]))
            gaps_0.append(np.abs(x0[i] / d[i] - x0[j] / d[j]))
            lo_p, hi_p = newcombe_difference(x[i], d[i], x[j], d[j], lv.pass_alpha)
            lo_f, hi_f = newcombe_difference(x[i], d[i], x[j], d[j], lv.fail_alpha / 2)
            pass_ends.append(np.maximum(np.abs(lo_p), np.abs(hi_p)))
            fail_dist.append(np.maximum(np.maximum(lo_f, -hi_f), 0.0))
        value = float(np.max(np.concatenate(gaps)))
        champion_value = float(np.max(np.concatenate(gaps_0)))
        upper = float(np.max(np.concatenate(pass_ends)))
        lower = float(np.max(np.concatenate(fail_dist)))
        harm, shown = lower > bound, upper <= bound
        champion_ok = _champion_odds_ok(at, judged, policy, lv)
    outcome, why = _impact_outcome(harm, _blocked(at, small, judged, policy), shown,
                                   champion_ok, {
        "harm": f"a TPR or FPR gap shown above {bound} for a pair of groups",
        "not_shown": f"not yet shown every TPR and FPR gap at most {bound}",
        "champion": f"not yet shown every gap within {policy.impact_margin} of the "
                    f"champion's (paired differences)",
        "pass": f"every TPR and FPR gap shown at most {bound} and within "
                f"{policy.impact_margin} of the champion's"})
    return _verdict("equalized_odds_difference", lv, outcome, why, method=method,
                    attribute=attribute, value=value, threshold=bound,
                    champion_value=champion_value, lower=lower, upper=upper, sizes=sizes)


def _champion_odds_ok(at: _Attribute, judged: list[int], policy: PromotionConfig,
                      lv: Levels) -> bool:
    """Paired test that every TPR and FPR gap of the candidate is within ``impact_margin``
    of the champion's (|gap_c| <= |gap_0| + |gap_c - gap_0|, triangle inequality)."""
    if _degenerate(at.champion):
        return True
    for label in (True, False):
        diff, se = {}, {}
        for g in judged:
            mask = (at.index == g) & (at.labels == label)
            diff[g], se[g] = proportion_difference(at.candidate[mask], at.champion[mask])
        for a, b in zip(*_pairs(judged), strict=True):
            d, s = diff[a] - diff[b], math.hypot(se[a], se[b])
            if abs(d) + lv.z_pass * s > policy.impact_margin:
                return False
    return True


# ------------------------------------------------------------------------ judge

def fail_statistics(ev: PairedEvidence) -> int:
    """How many statistics can fail a candidate: AUC and log loss, and per attribute,
    for each pair of its groups, the parity ratio and the TPR and FPR gaps.

    >>> from governance.evidence import PairedEvidence
    >>> ev = PairedEvidence(labels=np.zeros(3, dtype=np.int8), champion_scores=np.zeros(3),
    ...     candidate_scores=np.zeros(3), champion_threshold=.5, candidate_threshold=.5,
    ...     groups={"g": np.array(["A", "B", "C"], dtype=object)},
    ...     favourable="below_threshold", seed=0)
    >>> fail_statistics(ev)
    11
    """
    total = 2
    for values in ev.groups.values():
        k = len(np.unique(np.asarray(values).astype(str)))
        total += 3 * (k * (k - 1) // 2)
    return total


def judge(evidence: PairedEvidence, policy: PromotionConfig, *, look: int) -> Judgement:
    """Every gate's verdict at ``look`` (1-based, see :func:`look_at`): performance first,
    then parity and equalized odds per attribute (in the evidence's attribute order)."""
    lv = levels(policy, look, fail_statistics(evidence))
    gates = _performance(evidence, policy, lv)
    cand_q: dict[str, dict[str, GroupQuality]] = {}
    champ_q: dict[str, dict[str, GroupQuality]] = {}
    for attribute, values in evidence.groups.items():
        at = _attribute(evidence, values)
        gates.append(_parity(attribute, at, policy, lv))
        gates.append(_equalized_odds(attribute, at, policy, lv))
        cand_q[attribute] = group_quality(evidence.candidate_scores, evidence.labels, values)
        champ_q[attribute] = group_quality(evidence.champion_scores, evidence.labels, values)
    return Judgement(gates=gates, outcome=overall(gates), final=lv.final,
                     candidate_quality=cand_q, champion_quality=champ_q)
