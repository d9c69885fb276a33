"""Point statistics (performance, group rates, disparities) on constructed windows, every
number computed by hand."""

from __future__ import annotations

import math

import pytest

from governance import impact, performance


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

