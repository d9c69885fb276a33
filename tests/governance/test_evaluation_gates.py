"""Evaluation and gates on constructed windows, every number computed by hand."""

from __future__ import annotations

import math

import pytest

from governance import GateOutcome, PromotionConfig, compare, impact, performance
from governance.records import Evaluation, GateVerdict

CONFIG = PromotionConfig(min_group_examples=30, min_label_examples=30)


def window(groups: dict[str, tuple[int, int, int, int]]) -> tuple[list[int], list[int],
                                                                  list[dict[str, str]]]:
    """Decisions, labels and groups from per-group confusion cells (tp, fp, tn, fn)."""
    decisions, labels, gs = [], [], []
    for group, (tp, fp, tn, fn) in groups.items():
        for decision, label, n in ((1, 1, tp), (1, 0, fp), (0, 0, tn), (0, 1, fn)):
            decisions += [decision] * n
            labels += [label] * n
            gs += [{"group": group}] * n
    return decisions, labels, gs


def judged(groups: dict[str, tuple[int, int, int, int]],
           config: PromotionConfig = CONFIG, configured: list[str] | None = None
           ) -> Evaluation:
    decisions, labels, gs = window(groups)
    scores = [0.9 if d else 0.1 for d in decisions]
    return compare(candidate="v2", champion="v1", candidate_scores=scores,
                   candidate_decisions=decisions, champion_scores=scores,
                   champion_decisions=decisions, labels=labels, groups=gs,
                   attributes={"group": configured or sorted(groups)}, config=config)


def gate(ev: Evaluation, name: str) -> GateVerdict:
    return next(g for g in ev.gates if g.gate == name)


def test_auc_and_log_loss_by_hand() -> None:
    p = performance([0.2, 0.6, 0.4, 0.8], [0, 0, 1, 1])
    assert p.roc_auc == 0.75                      # pairs: (.4>.2), (.8>.2), (.8>.6); .4<.6
    assert p.log_loss == pytest.approx(-(math.log(.8) + math.log(.4) + math.log(.4)
                                         + math.log(.8)) / 4)
    assert (p.examples, p.positives, p.negatives) == (4, 2, 2)
    assert performance([0.3, 0.7], [1, 1]).roc_auc is None       # one class: undefined


def test_group_rates_and_disparities_by_hand() -> None:
    # A: 100 decisions, 50 selected; TPR 40/50 = .8, FPR 10/50 = .2
    # B: 100 decisions, 30 selected; TPR 25/50 = .5, FPR 5/50 = .1
    decisions, labels, gs = window({"A": (40, 10, 40, 10), "B": (25, 5, 45, 25)})
    s = impact(decisions, labels, gs, {"group": ["A", "B"]}, min_group_examples=30)["group"]
    a, b = s.groups["A"], s.groups["B"]
    assert (a.selection_rate, a.true_positive_rate, a.false_positive_rate) == (0.5, 0.8, 0.2)
    assert (b.selection_rate, b.true_positive_rate, b.false_positive_rate) == (0.3, 0.5, 0.1)
    assert (b.examples, b.selected, b.positives, b.negatives) == (100, 30, 50, 50)
    assert s.demographic_parity_ratio == pytest.approx(0.6)
    assert s.equalized_odds_difference == pytest.approx(0.3)      # max(.8-.5, .2-.1)


def test_disparity_fails_the_parity_and_equalized_odds_gates() -> None:
    ev = judged({"A": (40, 10, 40, 10), "B": (25, 5, 45, 25)})
    parity = gate(ev, "demographic_parity_ratio")
    assert parity.outcome is GateOutcome.FAIL and parity.attribute == "group"
    assert parity.value == pytest.approx(0.6) and parity.threshold == 0.8
    assert parity.sample_sizes == {"A": 100, "B": 100}
    eod = gate(ev, "equalized_odds_difference")
    assert eod.outcome is GateOutcome.FAIL and eod.value == pytest.approx(0.3)
    assert eod.sample_sizes == {"A.positives": 50, "A.negatives": 50,
                                "B.positives": 50, "B.negatives": 50}
    assert ev.outcome is GateOutcome.FAIL
    assert ev.failing() == ["demographic_parity_ratio[group]",
                            "equalized_odds_difference[group]"]


def test_fair_groups_pass_every_gate() -> None:
    # A and B: selection .5 and .45 (ratio .9); TPR .8/.76, FPR .2/.14 (EOD .06)
    ev = judged({"A": (40, 10, 40, 10), "B": (38, 7, 43, 12)})
    assert gate(ev, "demographic_parity_ratio").value == pytest.approx(0.9)
    assert gate(ev, "equalized_odds_difference").value == pytest.approx(0.06)
    assert [g.outcome for g in ev.gates] == [GateOutcome.PASS] * 4
    assert ev.outcome is GateOutcome.PASS


def test_a_small_group_holds_the_impact_gates() -> None:
    # C has 20 examples < 30: the fair A/B comparison cannot pass on its own
    ev = judged({"A": (40, 10, 40, 10), "B": (38, 7, 43, 12), "C": (5, 5, 5, 5)})
    parity = gate(ev, "demographic_parity_ratio")
    assert parity.outcome is GateOutcome.HOLD
    assert "C (20)" in parity.detail and parity.sample_sizes["C"] == 20
    assert parity.value == pytest.approx(0.9)                    # over A and B only
    assert gate(ev, "equalized_odds_difference").outcome is GateOutcome.HOLD
    assert ev.outcome is GateOutcome.HOLD


def test_a_configured_group_never_seen_holds() -> None:
    ev = judged({"A": (40, 10, 40, 10), "B": (38, 7, 43, 12)}, configured=["A", "B", "C"])
    assert gate(ev, "demographic_parity_ratio").outcome is GateOutcome.HOLD
    assert "C (0)" in gate(ev, "demographic_parity_ratio").detail


def test_harm_among_large_groups_fails_even_when_a_small_group_would_hold() -> None:
    ev = judged({"A": (40, 10, 40, 10), "B": (25, 5, 45, 25), "C": (5, 5, 5, 5)})
    assert gate(ev, "demographic_parity_ratio").outcome is GateOutcome.FAIL


def test_small_groups_can_be_excluded_by_config() -> None:
    config = CONFIG.model_copy(update={"small_groups": "exclude"})
    ev = judged({"A": (40, 10, 40, 10), "B": (38, 7, 43, 12), "C": (5, 5, 5, 5)}, config)
    parity = gate(ev, "demographic_parity_ratio")
    assert parity.outcome is GateOutcome.PASS and "excluded small groups: C" in parity.detail


def test_a_single_large_group_holds_there_is_nothing_to_compare() -> None:
    config = CONFIG.model_copy(update={"small_groups": "exclude"})
    ev = judged({"A": (40, 10, 40, 10), "B": (5, 5, 5, 5)}, config)
    assert gate(ev, "demographic_parity_ratio").outcome is GateOutcome.HOLD
    assert "fewer than two groups" in gate(ev, "demographic_parity_ratio").detail


def performance_gates(candidate: list[float], champion: list[float], labels: list[int],
                      config: PromotionConfig = CONFIG) -> dict[str, GateVerdict]:
    decisions = [int(s >= 0.5) for s in candidate]
    ev = compare(candidate="v2", champion="v1", candidate_scores=candidate,
                 candidate_decisions=decisions, champion_scores=champion,
                 champion_decisions=decisions, labels=labels,
                 groups=[{}] * len(labels), attributes={}, config=config)
    return {g.gate: g for g in ev.gates}


def test_performance_gates_compare_with_the_champion_within_a_margin() -> None:
    labels = [0] * 40 + [1] * 40
    champion = [0.3] * 40 + [0.7] * 40                 # AUC 1, log loss -ln .7 = .3567
    slightly_worse = [0.3] * 39 + [0.8] + [0.7] * 40   # one negative above every positive
    gates = performance_gates(slightly_worse, champion, labels)
    auc = gates["roc_auc"]
    assert auc.value == pytest.approx(1 - 40 / 1600)   # .975 < 1 - .01
    assert auc.champion_value == 1.0 and auc.threshold == pytest.approx(0.99)
    assert auc.outcome is GateOutcome.FAIL
    loss = gates["log_loss"]                           # (79 ln .7 + ln .2) / 80 more
    assert loss.value == pytest.approx(-(79 * math.log(0.7) + math.log(0.2)) / 80)
    assert loss.value - loss.champion_value == pytest.approx((math.log(.7) - math.log(.2)) / 80)
    assert loss.outcome is GateOutcome.PASS           # within 0.02
    lenient = CONFIG.model_copy(update={"roc_auc_margin": 0.03})
    assert performance_gates(slightly_worse, champion, labels, lenient)["roc_auc"].outcome \
        is GateOutcome.PASS


def test_performance_gates_hold_without_enough_of_each_class() -> None:
    labels = [0] * 40 + [1] * 29
    gates = performance_gates([0.4] * 69, [0.5] * 69, labels)
    assert {g.outcome for g in gates.values()} == {GateOutcome.HOLD}
    assert "has 29 and 40" in gates["roc_auc"].detail
