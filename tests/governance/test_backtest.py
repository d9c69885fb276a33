"""The backtest's pure core: prequential scores, labels learned when their time comes,
the learner's own code, and the tidy metric frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from governance import LearnerCore, LogisticModel, ModelSpec, PromotionConfig
from governance.backtest import backtest
from governance.evaluation import impact, performance
from governance.metric_frame import COLUMNS, metric_frame, side_by_side

SPEC = ModelSpec()
PROMOTION = PromotionConfig(examples_per_version=3, min_label_examples=1,
                            min_group_examples=1)
ATTRS = {"group": ["A", "B"]}


def run(events: pd.DataFrame, labels: pd.DataFrame, ttl_ms: int = 10_000,
        promotion: PromotionConfig = PROMOTION):
    return backtest(events, labels, spec=SPEC, promotion=promotion, feature_set="fs",
                    features=["x"], label_ttl_ms=ttl_ms, sensitive_attributes=ATTRS)


def frame(rows: list[tuple[str, int, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["event_id", "ts", "x", "group"]).assign(entity_id="u")


def labels(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["event_id", "label", "label_ts"])


def test_a_label_whose_time_has_not_come_is_not_learned() -> None:
    events = frame([("a", 0, 1.0, "A"), ("b", 50, 2.0, "B"), ("c", 100, 3.0, "A"),
                    ("d", 101, 4.0, "B")])
    out = run(events, labels([("a", 1, 100)])).scored.set_index("event_id")
    # a's label comes at 100: b (50) and c (100, scored before labels of its instant)
    # are scored by the untrained model; d (101) by the model that learned a.
    assert out["learned_before"].tolist() == [0, 0, 0, 1]
    assert out.loc[["a", "b", "c"], "score"].tolist() == [0.5, 0.5, 0.5]
    learned = LogisticModel(SPEC)
    learned.learn({"x": 1.0}, 1)
    assert out.at["d", "score"] == learned.score({"x": 4.0})[0]


def test_an_event_is_never_scored_by_a_model_that_learned_its_own_label() -> None:
    rng = np.random.default_rng(1)
    n = 300
    ts = np.sort(rng.integers(0, 5_000, n))
    events = frame([(f"e{i}", int(t), float(rng.normal()), "AB"[i % 2])
                    for i, t in enumerate(ts)])
    # delays from 0 (the label at the event's own instant) to 2 s; every third unlabelled
    lab = labels([(f"e{i}", int(rng.integers(0, 2)), int(t + rng.integers(0, 2_000)))
                  for i, t in enumerate(ts) if i % 3])
    out = run(events, lab).scored
    labelled = out[out["training_offset"].notna()]
    assert len(labelled) == len(lab)
    # its own example comes after every example the scoring model had learned
    assert (labelled["training_offset"] >= labelled["learned_before"]).all()
    # and the model had learned exactly the labels whose time (strictly) came before
    learn_at = dict(zip(lab["event_id"], np.maximum(
        lab["label_ts"], lab["event_id"].map(out.set_index("event_id")["ts"])), strict=True))
    times = np.sort(np.fromiter(learn_at.values(), dtype=np.int64))
    expected = np.searchsorted(times, out["ts"].to_numpy(), side="left")
    assert out["learned_before"].tolist() == expected.tolist()


def test_scores_come_from_the_learner_core_learning_in_label_time_order() -> None:
    events = frame([("a", 0, 1.0, "A"), ("b", 10, -1.0, "B"), ("c", 20, 2.0, "A"),
                    ("d", 40, 0.5, "B")])
    # b's label comes before a's: the learner learns b first
    lab = labels([("a", 1, 30), ("b", 0, 15), ("c", 1, 35)])
    result = run(events, lab)
    out = result.scored.set_index("event_id")
    assert out.loc[["a", "b", "c", "d"], "training_offset"].tolist() == [1, 0, 2, pd.NA]
    core = LearnerCore(spec=SPEC, promotion=PROMOTION, feature_set="fs",
                       sensitive_attributes=ATTRS, training_topic="backtest")
    by_hand = LogisticModel(SPEC)
    for x, y in ((-1.0, 0), (1.0, 1), (2.0, 1)):
        by_hand.learn({"x": x}, y)
    assert out.at["d", "score"] == by_hand.score({"x": 0.5})[0]
    assert result.core is not None
    assert result.core.challenger.to_artifact() == by_hand.to_artifact()
    # three examples: the learner cut v1 and judged it, exactly as LearnerCore does
    assert [r.version.rsplit("-", 1)[1] for r in result.versions][:2] == ["v0", "v1"]
    assert result.audit[0].decision.value == "bootstrap"
    assert core.lineage in result.versions[0].version


def test_served_scores_are_the_champion_of_the_time() -> None:
    events = frame([("a", 0, 1.0, "A"), ("b", 1, -1.0, "B"), ("c", 2, 2.0, "A"),
                    ("d", 100, 0.5, "B")])
    lab = labels([("a", 1, 10), ("b", 0, 11), ("c", 1, 12)])
    promo = PromotionConfig(examples_per_version=3, min_label_examples=1,
                            min_group_examples=1, small_groups="exclude")
    result = run(events, lab, promotion=promo)
    out = result.scored.set_index("event_id")
    assert set(out.loc[["a", "b", "c"], "served_version"]) == {result.versions[0].version}
    assert out.loc[["a", "b", "c"], "served_score"].tolist() == [0.5] * 3
    champion = result.core.champion
    expected = LogisticModel.from_artifact(result.core.version(champion).artifact)
    assert out.at["d", "served_version"] == champion
    assert out.at["d", "served_score"] == expected.score({"x": 0.5})[0]


def test_labels_join_like_the_scorer_first_wins_expired_and_unmatched_are_not_learned(
) -> None:
    events = frame([("a", 0, 1.0, "A"), ("b", 10, 2.0, "B")])
    lab = labels([("a", 1, 5), ("a", 0, 6), ("b", 1, 10 + 20_000), ("zz", 1, 7)])
    result = run(events, lab, ttl_ms=10_000)
    assert dict(result.labels) == {"joined": 1, "duplicate": 1, "expired": 1,
                                   "unmatched": 1}
    out = result.scored.set_index("event_id")
    assert out.at["a", "label"] == 1 and pd.isna(out.at["b", "label"])
    assert result.core.examples_learned == 1


def _scored(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    label = (rng.random(n) < score).astype(int)
    return pd.DataFrame({
        "ts": np.sort(rng.integers(0, 2 * 3_600_000, n)), "score": score,
        "decision": (score >= 0.5).astype(int),
        "label": pd.array(np.where(rng.random(n) < 0.9, label, -1), dtype="Int64"),
        "group": rng.choice(["A", "B", "C"], n, p=[0.5, 0.45, 0.05]),
    }).replace({"label": {-1: pd.NA}})


def test_metric_frame_is_tidy_one_row_per_number_with_sizes_and_intervals() -> None:
    scored = _scored()
    attrs = {"group": ["A", "B", "C"]}
    out = metric_frame(scored, attributes=attrs, min_group_examples=30,
                       period_ms=3_600_000, bootstrap=50)
    assert list(out.columns) == COLUMNS
    assert not out.duplicated(["period", "model", "attribute", "group", "metric"]).any()
    assert out["period"].nunique() == 2 and set(out["model"]) == {"candidate"}
    assert str(out["period"].dtype).startswith("datetime64") and out["period"].dt.tz
    first = out[out["period"] == out["period"].min()].set_index(
        ["attribute", "group", "metric"])
    hour = scored[scored["ts"] < 3_600_000]
    lab = hour[hour["label"].notna()]
    perf = performance(lab["score"].tolist(), lab["label"].astype(int).tolist())
    assert first.loc[("all", "all", "roc_auc"), "value"] == perf.roc_auc
    assert first.loc[("all", "all", "events"), "n"] == len(hour)
    assert first.loc[("all", "all", "examples"), "n"] == len(lab)
    imp = impact(lab["decision"].tolist(), lab["label"].astype(int).tolist(),
                 [{"group": g} for g in lab["group"]], attrs, 30)["group"]
    assert first.loc[("group", "all", "demographic_parity_ratio"), "value"] == pytest.approx(
        imp.demographic_parity_ratio)
    a = first.loc[("group", "A", "selection_rate")]
    assert a["value"] == imp.groups["A"].selection_rate and a["n"] == imp.groups["A"].examples
    assert a["ci_low"] < a["value"] < a["ci_high"]
    # a group below min_group_examples: its rate is null, as the gates see it, n is shown
    c = first.loc[("group", "C", "selection_rate")]
    assert pd.isna(c["value"]) and pd.isna(c["ci_low"]) and 0 < c["n"] < 30
    auc = first.loc[("all", "all", "roc_auc")]
    assert auc["ci_low"] < auc["value"] < auc["ci_high"]


def test_side_by_side_pairs_the_models_and_takes_the_difference() -> None:
    attrs = {"group": ["A", "B", "C"]}
    kwargs = {"attributes": attrs, "min_group_examples": 30, "period_ms": 3_600_000,
              "bootstrap": 0}
    both = pd.concat([metric_frame(_scored(seed=0), model="candidate", **kwargs),
                      metric_frame(_scored(seed=0).assign(decision=1), model="baseline",
                                   **kwargs)], ignore_index=True)
    wide = side_by_side(both)
    row = wide[(wide["metric"] == "selection_rate") & (wide["attribute"] == "all")].iloc[0]
    assert row["baseline_value"] == 1.0
    assert row["delta"] == pytest.approx(row["candidate_value"] - 1.0)
    assert len(wide) == len(both) / 2
