"""LearnerCore: bootstrap, gated and manual promotion, people's decisions, exact restarts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance import (
    AuditRecord,
    Decision,
    GateOutcome,
    GovernanceError,
    LearnerCore,
    ModelSpec,
    ModelVersionRecord,
    Output,
    PromotionConfig,
    VersionStatus,
    verify,
    version_id,
)
from governance.records import dumps
from tests.governance.training_streams import FEATURE_SET, GROUPS, Scorer, run, stream

SPEC = ModelSpec(learning_rate=0.05)


def learner(**promotion: object) -> LearnerCore:
    config = PromotionConfig(**{"examples_per_version": 300, "evaluation_window": 900,
                                **promotion})
    return LearnerCore(spec=SPEC, promotion=config, feature_set=FEATURE_SET,
                       sensitive_attributes=GROUPS, training_topic="training")


def audits(outputs: list[Output]) -> list[AuditRecord]:
    return [o for o in outputs if isinstance(o, AuditRecord)]


def statuses(outputs: list[Output]) -> list[tuple[int, str]]:
    return [(o.sequence, o.status.value) for o in outputs if isinstance(o, ModelVersionRecord)]


def test_start_publishes_the_untrained_version_0_as_champion_once() -> None:
    core = learner()
    v0, audit = core.start(now_ms=5)
    assert isinstance(v0, ModelVersionRecord) and isinstance(audit, AuditRecord)
    assert v0.version == version_id(FEATURE_SET, SPEC, 0) == core.champion
    assert (v0.status, v0.sequence, v0.parent, v0.examples_learned) == \
        (VersionStatus.CHAMPION, 0, None, 0)
    assert v0.training.from_offset is None and v0.training.to_offset is None
    assert v0.artifact.weights == {} and v0.created_at == 5
    assert (audit.decision, audit.by, audit.champion) == (Decision.BOOTSTRAP, "policy",
                                                          v0.version)
    assert core.start(now_ms=6) == []


def test_gated_mode_promotes_a_fair_better_candidate_and_retires_the_champion() -> None:
    core = learner()
    outputs, _ = run(core, 300)
    assert statuses(outputs) == [(0, "champion"), (0, "retired"), (1, "champion")]
    promote = audits(outputs)[-1]
    assert (promote.decision, promote.by, promote.override) == (Decision.PROMOTE, "policy",
                                                                False)
    assert promote.previous_champion == version_id(FEATURE_SET, SPEC, 0)
    assert promote.champion == core.champion == version_id(FEATURE_SET, SPEC, 1)
    assert [g.outcome for g in promote.gates] == [GateOutcome.PASS] * 4
    ev = promote.evaluation
    assert ev is not None and ev.examples == 300 and ev.champion_scores_served == 300
    assert ev.champion_performance.roc_auc == 0.5      # v0 scores everything 0.5
    record = core.version(core.champion or "")
    assert (record.parent, record.training.from_offset, record.training.to_offset,
            record.examples_learned, record.training.topic) == (
        version_id(FEATURE_SET, SPEC, 0), 0, 299, 300, "training")


def test_gated_mode_holds_a_candidate_that_selects_one_group_far_less_often() -> None:
    core = learner()
    outputs, _ = run(core, 600, disparity=1.5)
    held = [a for a in audits(outputs) if a.decision is Decision.HOLD]
    assert [a.version for a in held] == [version_id(FEATURE_SET, SPEC, k) for k in (1, 2)]
    assert "demographic_parity_ratio[group]" in held[0].reason
    parity = next(g for g in held[0].gates if g.gate == "demographic_parity_ratio")
    assert parity.outcome is GateOutcome.FAIL and parity.value is not None
    assert parity.value < 0.8 and parity.sample_sizes == {"A": 100, "B": 100, "C": 100}
    assert core.champion == version_id(FEATURE_SET, SPEC, 0)      # nothing harmful serves
    assert core.version(held[1].version).status is VersionStatus.HELD


def test_a_small_group_holds_the_candidate_in_gated_mode() -> None:
    core = learner(min_group_examples=101)                       # 100 per group in 300
    outputs, _ = run(core, 300)
    hold = audits(outputs)[-1]
    assert hold.decision is Decision.HOLD and core.champion.endswith("-v0")  # type: ignore[union-attr]
    assert "demographic_parity_ratio[group]" in hold.reason
    assert {g.outcome for g in hold.gates if g.attribute} == {GateOutcome.HOLD}


def test_manual_mode_waits_for_a_person_and_records_who_promoted() -> None:
    core = learner(mode="manual")
    outputs, _ = run(core, 300)
    wait = audits(outputs)[-1]
    v1 = version_id(FEATURE_SET, SPEC, 1)
    assert (wait.decision, wait.version) == (Decision.AWAIT_REVIEW, v1)
    assert core.version(v1).status is VersionStatus.CANDIDATE
    out = core.promote(v1, by="ada", reason="reviewed the gates", now_ms=10,
                       request_id="req-1")
    assert statuses(out) == [(0, "retired"), (1, "champion")]
    audit = audits(out)[0]
    assert (audit.decision, audit.by, audit.reason, audit.override) == (
        Decision.PROMOTE, "ada", "reviewed the gates", False)
    assert audit.time == 10 and audit.request_id == "req-1" and core.champion == v1


def test_a_person_is_refused_when_gates_fail_unless_they_override() -> None:
    core = learner(mode="manual")
    run(core, 300, disparity=1.5)
    v1 = version_id(FEATURE_SET, SPEC, 1)
    refused = core.promote(v1, by="bob", reason="looks fine", now_ms=11)
    assert len(refused) == 1 and refused[0].decision is Decision.REFUSE  # type: ignore[union-attr]
    assert "demographic_parity_ratio[group]" in refused[0].reason         # type: ignore[union-attr]
    assert core.champion == version_id(FEATURE_SET, SPEC, 0)
    out = core.promote(v1, by="bob", reason="accepted risk, ticket 42", now_ms=12,
                       override=True)
    audit = audits(out)[0]
    assert (audit.decision, audit.override, audit.by) == (Decision.PROMOTE, True, "bob")
    assert any(g.outcome is GateOutcome.FAIL for g in audit.gates)
    assert core.champion == v1


def test_rollback_to_the_previous_or_a_named_champion() -> None:
    core = learner()
    run(core, 900)                                      # v1, v2, v3 each promoted
    v = [version_id(FEATURE_SET, SPEC, k) for k in range(4)]
    assert core.champion == v[3]
    out = core.rollback(by="cy", reason="alerts after v3", now_ms=20)
    assert statuses(out) == [(3, "rolled_back"), (2, "champion")]
    audit = audits(out)[0]
    assert (audit.decision, audit.previous_champion, audit.champion, audit.by) == (
        Decision.ROLLBACK, v[3], v[2], "cy")
    assert audit.evaluation is not None and audit.evaluation.champion == v[3]
    assert audit.evaluation.candidate == v[2]
    out = core.rollback(v[0], by="cy", reason="back to baseline", now_ms=21)
    assert statuses(out) == [(2, "rolled_back"), (0, "champion")]
    out = core.rollback(by="cy", reason="v1 was fine", now_ms=22)   # skips rolled-back ones
    assert statuses(out) == [(0, "rolled_back"), (1, "champion")]


def test_people_must_name_themselves_and_a_reason_and_a_known_version() -> None:
    core = learner(mode="manual")
    run(core, 300)
    v1 = version_id(FEATURE_SET, SPEC, 1)
    with pytest.raises(GovernanceError, match="--by"):
        core.promote(v1, by=" ", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="--by"):
        core.promote(v1, by="policy", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="--reason"):
        core.promote(v1, by="ada", reason="", now_ms=1)
    with pytest.raises(GovernanceError, match="unknown version"):
        core.promote("nope", by="ada", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="already the champion"):
        core.promote(core.champion or "", by="ada", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="no previous champion"):
        core.rollback(by="ada", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="never been champion"):
        core.rollback(v1, by="ada", reason="x", now_ms=1)


def test_each_offset_is_learned_once_and_other_feature_sets_are_skipped() -> None:
    core = learner()
    scorer = Scorer(core)
    scorer.follow(core.start(now_ms=0))
    features, label, groups = next(stream(1))
    example = scorer.example(0, features, label, groups)
    core.learn(7, example, now_ms=1)
    assert core.next_offset == 8 and core.examples_learned == 1
    with pytest.raises(GovernanceError, match="already learned"):
        core.learn(7, example, now_ms=1)
    other = example.model_copy(update={"feature_set": "another"})
    assert core.learn(9, other, now_ms=2) == []
    assert (core.examples_learned, core.examples_skipped, core.next_offset) == (1, 1, 10)


def test_every_version_rebuilds_bit_for_bit_from_the_training_log() -> None:
    core = learner(examples_per_version=250)
    outputs, log = run(core, 1000, disparity=0.5)
    versions = {o.version: o for o in outputs if isinstance(o, ModelVersionRecord)}
    assert len(versions) == 5
    for record in versions.values():
        result = verify(record, iter(log))
        assert result.ok, result.describe()
    v2 = versions[version_id(FEATURE_SET, SPEC, 2)]
    tampered = [(o, e.model_copy(update={"label": 1 - e.label})) if o == 3 else (o, e)
                for o, e in log]
    result = verify(v2, tampered)
    assert not result.ok and "DIFFERS" in result.describe()
    short = verify(v2, log[:400])
    assert not short.ok and short.actual_examples == 400


def test_records_are_strict_json_and_validate_back() -> None:
    core = learner()
    outputs, _ = run(core, 600, disparity=1.5)
    for record in outputs:
        text = dumps(record)
        assert type(record).model_validate_json(text) == record


def as_json_text(data: object) -> object:
    return json.loads(json.dumps(data, allow_nan=False))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(5, 60), window=st.integers(10, 120), stop=st.integers(0, 200),
       mode=st.sampled_from(["gated", "manual"]), disparity=st.sampled_from([0.0, 1.5]))
def test_restart_from_a_snapshot_gives_what_never_stopping_gives(
        n: int, window: int, stop: int, mode: str, disparity: float) -> None:
    config = {"examples_per_version": n, "evaluation_window": window, "mode": mode,
              "min_group_examples": 3, "min_label_examples": 3, "retain_versions": 3}
    straight = learner(**config)
    expected, _ = run(straight, 200, seed=n, disparity=disparity)

    first = learner(**config)
    before, _ = run(first, stop, seed=n, disparity=disparity)
    snapshot = as_json_text(first.snapshot())
    resumed = LearnerCore.restore(
        snapshot, spec=SPEC, promotion=first.promotion, feature_set=FEATURE_SET,
        sensitive_attributes=GROUPS, training_topic="training")
    assert resumed.next_offset == stop
    after, _ = run(resumed, 200, seed=n, disparity=disparity, start=stop)

    assert [dumps(o) for o in before + after] == [dumps(o) for o in expected]
    assert as_json_text(resumed.snapshot()) == as_json_text(straight.snapshot())


def test_a_person_s_decision_survives_a_restart() -> None:
    core = learner(mode="manual")
    run(core, 300)
    core.promote(version_id(FEATURE_SET, SPEC, 1), by="ada", reason="ok", now_ms=1)
    resumed = LearnerCore.restore(as_json_text(core.snapshot()), spec=SPEC,  # type: ignore[arg-type]
                                  promotion=core.promotion, feature_set=FEATURE_SET,
                                  sensitive_attributes=GROUPS, training_topic="training")
    assert resumed.champion == core.champion
    assert resumed.rollback(by="ada", reason="undo", now_ms=2)[-1].champion.endswith("-v0")  # type: ignore[union-attr]


def test_a_snapshot_of_another_lineage_is_refused() -> None:
    snapshot = learner().snapshot()
    with pytest.raises(GovernanceError, match="lineage"):
        LearnerCore.restore(snapshot, spec=ModelSpec(learning_rate=0.1),
                            promotion=PromotionConfig(), feature_set=FEATURE_SET)
    with pytest.raises(GovernanceError, match="not a learner snapshot"):
        LearnerCore.restore({"format": "pickle"}, spec=SPEC, promotion=PromotionConfig(),
                            feature_set=FEATURE_SET)


def test_a_new_lineage_keeps_the_serving_champion_and_judges_against_it() -> None:
    old = learner()
    run(old, 300)
    incumbent = old.version(old.champion or "")                  # old lineage's v1
    new_spec = ModelSpec(learning_rate=0.1)
    core = LearnerCore(spec=new_spec, promotion=old.promotion, feature_set=FEATURE_SET,
                       sensitive_attributes=GROUPS)
    (audit,) = core.start(now_ms=0, incumbent=incumbent)
    assert (audit.decision, audit.champion) == (Decision.BOOTSTRAP, incumbent.version)
    assert core.champion == incumbent.version
    outputs, _ = run(core, 300, seed=2)
    first = next(o for o in outputs
                 if isinstance(o, ModelVersionRecord) and o.lineage == core.lineage)
    assert first.version == version_id(FEATURE_SET, new_spec, 1) and first.parent is None
    assert first.evaluation is not None and first.evaluation.champion == incumbent.version
    assert first.evaluation.champion_scores_served == 300          # the scorer used it
    with pytest.raises(GovernanceError, match="restore"):
        learner().start(now_ms=0, incumbent=learner().start(now_ms=0)[0])  # type: ignore[arg-type]


def test_a_person_promoting_an_older_version_has_it_judged_on_the_current_window() -> None:
    core = learner(mode="manual", examples_per_version=200, evaluation_window=300)
    run(core, 400)                                                # v1 at 199, v2 at 399
    v1 = core.version(version_id(FEATURE_SET, SPEC, 1))
    frozen = core._frozen_model(v1)
    window = list(core._window)                                   # offsets 100..399
    expected = [s.prequential if s.offset <= 199 else frozen.predict_x(s.x) for s in window]
    from governance import compare

    got = core.evaluate(v1.version)
    want = compare(
        candidate=v1.version, champion=core.champion, candidate_scores=expected,
        candidate_decisions=[int(p >= SPEC.threshold) for p in expected],
        champion_scores=[s.served_score for s in window],
        champion_decisions=[s.served_decision for s in window],
        labels=[s.label for s in window], groups=[s.groups for s in window],
        attributes=GROUPS, config=core.promotion, offsets=(100, 399),
        champion_scores_served=300)
    assert got == want


def test_after_a_person_changes_the_champion_its_scores_are_recomputed() -> None:
    core = learner(mode="manual", examples_per_version=200, evaluation_window=200)
    run(core, 200)
    core.promote(version_id(FEATURE_SET, SPEC, 1), by="ada", reason="ok", now_ms=1,
                 override=True)
    assert core.champion == version_id(FEATURE_SET, SPEC, 1)
    ev = core.evaluate()                       # every example was scored by v0
    assert (ev.champion_scores_served, ev.champion_scores_recomputed) == (0, 200)


def test_retained_versions_are_bounded_and_evicted_ones_are_unknown_here() -> None:
    core = learner(examples_per_version=30, evaluation_window=60, retain_versions=2,
                   min_group_examples=1, min_label_examples=1)
    run(core, 600, disparity=0.7)
    assert core.sequence == 20
    kept = [v.sequence for v in core.versions()]
    assert len(kept) <= 5 and kept[-1] == 20              # 2 champions, 2 others, current
    with pytest.raises(GovernanceError, match="unknown version"):
        core.version(version_id(FEATURE_SET, SPEC, 1))


def test_a_repeated_example_is_learned_once_by_the_learner_and_by_rebuild() -> None:
    """Scorers append at least once: a repeat of an event_id changes nothing, live or
    rebuilt, so rebuild --verify still holds."""
    from governance import LearnerCore, ModelSpec, PromotionConfig, TrainingExample
    from governance.rebuild import rebuild

    def ex(i: int) -> TrainingExample:
        return TrainingExample(event_id=f"e{i}", entity_id="u", features={"x": float(i % 7)},
                               label=i % 2, score=0.5, decision=1, model_version="v0",
                               feature_set="fs", event_ts=i, label_ts=i)

    log = [ex(i) for i in range(60)]
    with_repeats = log[:30] + log[25:30] + log[30:]  # a scorer replayed five examples
    promotion = PromotionConfig(examples_per_version=1000)
    clean = LearnerCore(spec=ModelSpec(), promotion=promotion, feature_set="fs")
    noisy = LearnerCore(spec=ModelSpec(), promotion=promotion, feature_set="fs")
    for offset, example in enumerate(log):
        clean.learn(offset, example, now_ms=offset)
    for offset, example in enumerate(with_repeats):
        noisy.learn(offset, example, now_ms=offset)
    assert noisy.examples_repeated == 5 and noisy.examples_learned == 60
    assert noisy.challenger.to_artifact() == clean.challenger.to_artifact()
    rebuilt, learned = rebuild(list(enumerate(with_repeats)), spec=ModelSpec(),
                               feature_set="fs", from_offset=0, to_offset=len(with_repeats) - 1)
    assert learned == 60 and rebuilt.to_artifact() == clean.challenger.to_artifact()
