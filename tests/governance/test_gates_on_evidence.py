"""Gates on paired evidence: what passes, fails and holds, with the numbers in the verdict,
and the error rates of the sequential rule at the boundary, where they are largest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from governance.config import PromotionConfig
from governance.evidence import PairedEvidence
from governance.gates import judge, look_at
from governance.records import GateOutcome, GateVerdict

POLICY = PromotionConfig()
LOOKS = POLICY.look_sizes()


def world(n: int, seed: int, *, favourable_rate: tuple[float, float] = (0.6, 0.6),
          share_b: float = 0.3, base_rate: float = 0.4,
          favourable: str = "below_threshold") -> PairedEvidence:
    """n paired examples: labels at ``base_rate``; the candidate gives group A and B the
    favourable decision at the given rates whatever the label (so TPR and FPR gaps equal
    the selection-rate gap); the champion gives it to 60% of either group."""
    rng = np.random.default_rng(seed)
    b = rng.random(n) < share_b
    y = (rng.random(n) < base_rate).astype(np.int8)
    fav = rng.random(n) < np.where(b, favourable_rate[1], favourable_rate[0])
    champ_fav = rng.random(n) < 0.6
    # below_threshold: a favourable decision is a score under 0.5
    to_score = (lambda f: np.where(f, 0.3, 0.7)) if favourable == "below_threshold" \
        else (lambda f: np.where(f, 0.7, 0.3))
    jitter = rng.random(n) * 0.01
    return PairedEvidence(
        labels=y, champion_scores=to_score(champ_fav) + jitter,
        candidate_scores=to_score(fav) + jitter,
        groups={"group": np.where(b, "B", "A").astype(object)},
        champion_threshold=0.5, candidate_threshold=0.5, favourable=favourable,  # type: ignore[arg-type]
        seed=seed)


def gate(gates: list[GateVerdict], name: str) -> GateVerdict:
    return next(g for g in gates if g.gate == name)


def informative(n: int, seed: int, candidate_noise: float, champion_noise: float,
                groups: np.ndarray | None = None) -> PairedEvidence:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(np.int8)

    def score(noise: float) -> np.ndarray:
        return 1 / (1 + np.exp(-2 * (z + rng.normal(scale=noise, size=n))))

    g = groups if groups is not None else np.where(rng.random(n) < .3, "B", "A")
    return PairedEvidence(labels=y, champion_scores=score(champion_noise),
                          candidate_scores=score(candidate_noise),
                          groups={"group": g.astype(object)}, champion_threshold=0.5,
                          candidate_threshold=0.5, favourable="below_threshold", seed=seed)


# ------------------------------------------------------------------------ looks

def test_looks_fall_on_the_schedule_and_nowhere_else() -> None:
    assert LOOKS == [1000, 2000, 4000, 8000, 16000]
    due = {n: look_at(n, POLICY) for n in range(1, 17001) if look_at(n, POLICY)}
    assert due == {1000: 1, 2000: 2, 4000: 3, 8000: 4, 16000: 5}


def test_a_look_outside_the_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of the policy's 5 looks"):
        judge(world(100, 1), POLICY, look=6)


# ------------------------------------------------------------------------ degenerate

@pytest.mark.parametrize("score", [1.0, 0.0])
def test_a_candidate_that_selects_no_one_or_everyone_is_never_promoted(score: float) -> None:
    for look, n in enumerate(LOOKS, start=1):
        ev = world(n, look)
        ev = PairedEvidence(**{**ev.__dict__, "candidate_scores": np.full(n, score)})
        j = judge(ev, POLICY, look=look)
        assert j.outcome is not GateOutcome.PASS
        parity = gate(j.gates, "demographic_parity_ratio")
        assert parity.outcome is not GateOutcome.PASS
        assert "degenerate decisions never pass" in parity.detail
    assert j.final and j.outcome is GateOutcome.FAIL
    assert "inconclusive at the final look" in parity.detail and parity.final


# ------------------------------------------------------------------------ impact

def test_an_injected_disparity_on_the_favourable_outcome_fails_with_its_interval() -> None:
    # B is given the favourable outcome at 0.42, A at 0.6: ratio 0.7 in truth
    j = judge(world(4000, 7, favourable_rate=(0.6, 0.42)), POLICY, look=3)
    parity = gate(j.gates, "demographic_parity_ratio")
    assert parity.outcome is GateOutcome.FAIL and j.outcome is GateOutcome.FAIL
    assert parity.value == pytest.approx(0.7, abs=0.05)
    assert parity.lower is not None and parity.upper is not None
    assert parity.lower <= parity.value <= parity.upper < parity.threshold == 0.8
    assert parity.confidence == pytest.approx(1 - 0.05 / 5)
    assert parity.look == 3 and parity.max_looks == 5 and not parity.final
    assert "MOVER" in (parity.method or "")
    assert parity.sample_sizes["B.favourable"] + parity.sample_sizes["B.unfavourable"] > 1000
    eod = gate(j.gates, "equalized_odds_difference")     # TPR and FPR gaps of 0.18
    assert eod.outcome is GateOutcome.FAIL and eod.lower > 0.1
    assert eod.confidence == pytest.approx(1 - 2 * 0.05 / 5)   # TPR and FPR, simultaneous


def test_a_small_injected_disparity_holds_first_then_is_decided() -> None:
    # ratio 0.75: not shown below 0.8 on 1000 examples (hold), shown on 16000 (fail)
    early = gate(judge(world(1000, 8, favourable_rate=(0.6, 0.45)), POLICY, look=1).gates,
                 "demographic_parity_ratio")
    assert early.outcome is GateOutcome.HOLD
    assert early.lower < 0.8 < early.upper
    late = gate(judge(world(16000, 8, favourable_rate=(0.6, 0.45)), POLICY, look=5).gates,
                "demographic_parity_ratio")
    assert late.outcome is GateOutcome.FAIL and late.upper < 0.8


def test_parity_is_judged_on_the_favourable_outcome() -> None:
    """The issue's example: 10% vs 20% adverse decisions are 90% vs 80% approvals (ratio
    0.89, within the four-fifths rule); judged on the adverse decision it would be 0.5."""
    approvals = world(16000, 9, favourable_rate=(0.9, 0.8))
    approvals = PairedEvidence(**{**approvals.__dict__,          # the champion did the same
                                  "champion_scores": approvals.candidate_scores})
    parity = gate(judge(approvals, POLICY, look=5).gates, "demographic_parity_ratio")
    assert parity.value == pytest.approx(0.89, abs=0.02)
    assert parity.outcome is GateOutcome.PASS and parity.lower >= 0.8
    flipped = PairedEvidence(**{**approvals.__dict__, "favourable": "above_threshold"})
    parity = gate(judge(flipped, POLICY, look=5).gates, "demographic_parity_ratio")
    assert parity.value == pytest.approx(0.5, abs=0.05)
    assert parity.outcome is GateOutcome.FAIL


def test_a_group_below_the_minimum_holds_the_impact_gates() -> None:
    ev = world(1000, 10, share_b=0.02)                     # B: ~20 examples
    j = judge(ev, POLICY, look=1)
    for name in ("demographic_parity_ratio", "equalized_odds_difference"):
        verdict = gate(j.gates, name)
        assert verdict.outcome is GateOutcome.HOLD and "groups below 30: B" in verdict.detail


def test_a_fair_candidate_passes_once_the_evidence_suffices() -> None:
    ev = world(4000, 11)
    j = judge(ev, POLICY, look=3)
    for name in ("demographic_parity_ratio", "equalized_odds_difference"):
        verdict = gate(j.gates, name)
        assert verdict.outcome is GateOutcome.PASS, verdict.detail


# ------------------------------------------------------------------------ performance

def test_a_clearly_worse_candidate_fails_and_an_equal_one_passes_performance() -> None:
    worse = judge(informative(4000, 12, candidate_noise=1.5, champion_noise=0.1), POLICY,
                  look=3)
    auc = gate(worse.gates, "roc_auc")
    assert auc.outcome is GateOutcome.FAIL and auc.upper < auc.threshold
    assert auc.value < auc.champion_value
    same = informative(4000, 13, candidate_noise=0.3, champion_noise=0.3)
    same = PairedEvidence(**{**same.__dict__, "candidate_scores": same.champion_scores})
    j = judge(same, POLICY, look=3)
    assert gate(j.gates, "roc_auc").outcome is GateOutcome.PASS
    assert gate(j.gates, "log_loss").outcome is GateOutcome.PASS


def test_per_group_auc_and_calibration_are_reported_not_gated() -> None:
    j = judge(informative(2000, 14, 0.3, 0.3), POLICY, look=2)
    quality = j.candidate_quality["group"]
    assert set(quality) == {"A", "B"} and quality["A"].examples + quality["B"].examples == 2000
    assert 0.5 < quality["B"].roc_auc < 1 and 0 <= quality["B"].calibration_error < 0.2
    assert {g.gate for g in j.gates} == {"roc_auc", "log_loss", "demographic_parity_ratio",
                                         "equalized_odds_difference"}


# ------------------------------------------------------------------------ replay

def test_the_same_evidence_gives_the_same_verdict_bit_for_bit() -> None:
    """Closed forms, no resampling: a rebuild replays the decision exactly, whatever the
    seed, and on copies of the arrays."""
    ev = world(4000, 15, favourable_rate=(0.6, 0.5))
    first = judge(ev, POLICY, look=3)
    copy = PairedEvidence(labels=ev.labels.copy(), champion_scores=ev.champion_scores.copy(),
                          candidate_scores=ev.candidate_scores.copy(),
                          groups={k: v.copy() for k, v in ev.groups.items()},
                          champion_threshold=.5, candidate_threshold=.5,
                          favourable="below_threshold", seed=ev.seed + 1)
    again = judge(copy, POLICY, look=3)
    assert [g.model_dump_json() for g in first.gates] == \
        [g.model_dump_json() for g in again.gates]


# ------------------------------------------------------------------------ error rates

def sequential(make: callable, candidates: int) -> list[str]:  # type: ignore[valid-type]
    """Judge each candidate at every look until a verdict that is not hold."""
    verdicts = []
    for c in range(candidates):
        verdict = "hold"
        for look, n in enumerate(LOOKS[:4], start=1):
            j = judge(make(n, c), POLICY, look=look)
            if j.outcome is not GateOutcome.HOLD:
                verdict = j.outcome.value
                break
        verdicts.append(verdict)
    return verdicts


def on_the_parity_bound(n: int, seed: int) -> PairedEvidence:
    """Both models favour those with label 0, each erring on 10% of people: no TPR or FPR
    gap, but B's base rate (54.5%) against A's (40%) puts the true parity ratio at exactly
    0.8 for both (0.464 / 0.58), so only the parity bound decides."""
    rng = np.random.default_rng(seed)
    b = rng.random(n) < 0.3
    y = (rng.random(n) < np.where(b, 0.545, 0.4)).astype(np.int8)

    def scores() -> np.ndarray:
        fav = (y == 0) ^ (rng.random(n) < 0.1)
        return np.where(fav, 0.3, 0.7) + rng.random(n) * 0.01

    return PairedEvidence(labels=y, champion_scores=scores(), candidate_scores=scores(),
                          groups={"group": np.where(b, "B", "A").astype(object)},
                          champion_threshold=.5, candidate_threshold=.5,
                          favourable="below_threshold", seed=seed)


def test_a_candidate_on_the_parity_bound_is_rarely_promoted_over_all_looks() -> None:
    """True ratio exactly 0.8 (the worst case for the pass test): promoted in at most
    false_promotion_rate = 5% of candidates (100 here; the union bound over looks makes
    the realised rate smaller: 1 of 100 with these seeds, and about 10 of 100 if each look
    spent the whole 5%)."""
    verdicts = sequential(on_the_parity_bound, 100)
    assert verdicts.count("pass") <= 5
    assert verdicts.count("fail") <= 5           # 0.8 is not harm beyond the bound either


def test_a_candidate_on_the_bound_is_rarely_failed_over_all_looks_and_statistics() -> None:
    """Just inside every bound (ratio 0.82, TPR and FPR gaps 0.099): failed as harmful in
    at most false_failure_rate = 5% of candidates, over all looks and statistics."""
    verdicts = sequential(lambda n, c: world(n, 2000 + c, favourable_rate=(0.55, 0.451)), 100)
    assert verdicts.count("fail") <= 5


def test_derived_levels_are_stated_in_every_verdict() -> None:
    j = judge(world(1000, 16), POLICY, look=1)
    for verdict in j.gates:
        assert "pass tests at one-sided 0.01" in verdict.detail
        assert "fail tests at 0.002 (5 statistics)" in verdict.detail
    assert math.isclose(0.05 / 5 / 5, 0.002)


def test_every_attribute_and_intersection_is_gated_and_no_evidence_holds() -> None:
    ev = world(2000, 17)
    rng = np.random.default_rng(1017)
    band = np.where(rng.random(2000) < 0.5, "young", "old").astype(object)
    both = np.array([f"{g}×{b}" for g, b in zip(ev.groups["group"], band, strict=True)],
                    dtype=object)
    ev = PairedEvidence(**{**ev.__dict__, "groups": {"group": ev.groups["group"],
                                                     "group×age_band": both}})
    j = judge(ev, POLICY, look=2)
    assert [(g.gate, g.attribute) for g in j.gates][2:] == [
        ("demographic_parity_ratio", "group"), ("equalized_odds_difference", "group"),
        ("demographic_parity_ratio", "group×age_band"),
        ("equalized_odds_difference", "group×age_band")]
    assert "fail tests at 0.000435 (23 statistics)" in j.gates[0].detail  # 2 + 3 + 3*6
    empty = judge(world(0, 18), POLICY, look=1)
    assert empty.outcome is GateOutcome.HOLD
    assert "no paired examples yet" in gate(empty.gates, "demographic_parity_ratio").detail
