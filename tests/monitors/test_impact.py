"""Group impact on constructed data: rates, minimum sample, parity ratio, equalized odds."""

from __future__ import annotations

import math

import pytest

from monitors import (
    AttributeImpact,
    ImpactConfig,
    demographic_parity_ratio,
    equalized_odds_difference,
    group_of,
)
from monitors.impact import outcome_of


def feed(impact: AttributeImpact, group: str, decisions: int, selected: int, now: float) -> None:
    for i in range(decisions):
        impact.on_decision(impact.group(group), int(i < selected), now)


def feed_outcomes(impact: AttributeImpact, group: str, now: float, **cells: int) -> None:
    for outcome, n in cells.items():
        for _ in range(n):
            impact.on_outcome(impact.group(group), outcome, now)


def test_groups_are_bounded_with_other_and_unknown() -> None:
    groups = ["A", "B"]
    assert [group_of(v, groups) for v in ("A", "Z", None, "", float("nan"), 7)] == [
        "A", "other", "unknown", "unknown", "unknown", "other",
    ]


def test_outcome_cells() -> None:
    assert [outcome_of(d, y) for d, y in [(1, 1), (1, 0), (0, 0), (0, 1)]] == [
        "tp", "fp", "tn", "fn",
    ]


def test_parity_ratio_and_equalized_odds_on_constructed_data() -> None:
    impact = AttributeImpact(["A", "B", "C"], ImpactConfig(min_group_size=30))
    feed(impact, "A", decisions=100, selected=50, now=0)   # 0.50
    feed(impact, "B", decisions=100, selected=30, now=0)   # 0.30
    feed(impact, "C", decisions=10, selected=0, now=0)     # too small: excluded
    feed_outcomes(impact, "A", 0, tp=40, fn=10, fp=10, tn=40)  # TPR .8, FPR .2
    feed_outcomes(impact, "B", 0, tp=30, fn=20, fp=5, tn=45)   # TPR .6, FPR .1
    s = impact.statistics(now=0)
    assert s.groups["A"].selection_rate == 0.5 and s.groups["B"].selection_rate == 0.3
    assert math.isnan(s.groups["C"].selection_rate)
    assert s.demographic_parity_ratio == pytest.approx(0.3 / 0.5)
    assert s.groups["A"].true_positive_rate == 0.8 and s.groups["B"].false_positive_rate == 0.1
    assert s.equalized_odds_difference == pytest.approx(0.2)  # max(.8-.6, .2-.1)


def test_rates_need_min_group_size_of_their_own_denominator() -> None:
    impact = AttributeImpact(["A"], ImpactConfig(min_group_size=30))
    feed(impact, "A", decisions=29, selected=10, now=0)
    feed_outcomes(impact, "A", 0, tp=30, fn=0, fp=1, tn=1)
    g = impact.statistics(now=0).groups["A"]
    assert math.isnan(g.selection_rate)          # 29 decisions
    assert g.true_positive_rate == 1.0           # 30 labelled positives
    assert math.isnan(g.false_positive_rate)     # 2 labelled negatives


def test_ratio_is_nan_with_fewer_than_two_qualifying_groups() -> None:
    impact = AttributeImpact(["A", "B"], ImpactConfig(min_group_size=30))
    feed(impact, "A", decisions=100, selected=10, now=0)
    feed(impact, "B", decisions=5, selected=5, now=0)
    s = impact.statistics(now=0)
    assert math.isnan(s.demographic_parity_ratio)
    assert math.isnan(s.equalized_odds_difference)


def test_window_forgets_old_decisions() -> None:
    impact = AttributeImpact(["A", "B"], ImpactConfig(window_seconds=60, window_buckets=6,
                                                      min_group_size=10))
    feed(impact, "A", decisions=50, selected=50, now=0)
    feed(impact, "B", decisions=50, selected=0, now=0)
    assert impact.statistics(now=0).demographic_parity_ratio == 0.0
    feed(impact, "A", decisions=50, selected=25, now=100)
    feed(impact, "B", decisions=50, selected=25, now=100)
    assert impact.statistics(now=100).demographic_parity_ratio == 1.0


def test_disparity_functions_edge_cases() -> None:
    nan = float("nan")
    assert demographic_parity_ratio({"A": 0.0, "B": 0.0}) == 1.0
    assert math.isnan(demographic_parity_ratio({"A": 0.4, "B": nan}))
    assert equalized_odds_difference({"A": 0.9, "B": nan}, {"A": 0.3, "B": 0.1}) == (
        pytest.approx(0.2)
    )
    assert math.isnan(equalized_odds_difference({"A": 0.9}, {"A": 0.3}))
