"""LearnerCore: bootstrap, the shadow lifecycle, gated and manual promotion on shadow
evidence, people's decisions, exact restarts."""

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
    TrainingExample,
    VersionStatus,
    verify,
    version_id,
)
from governance.records import dumps
from monitors.config import DriftConfig
from tests.governance.training_streams import FEATURE_SET, GROUPS, Scorer, run, stream
from tests.support import max_examples

SPEC = ModelSpec(learning_rate=0.05)
#: Small looks so the tests run fast: looks at 300, 600, 1200 and (final) 2400 paired.
SMALL = {"examples_per_version": 300, "first_look_examples": 300,
         "max_examples_per_judgement": 2400}


def learner(**promotion: object) -> LearnerCore:
    config = PromotionConfig(**{**SMALL, **promotion})  # type: ignore[arg-type]
    return LearnerCore(spec=SPEC, promotion=config, feature_set=FEATURE_SET,
                       sensitive_attributes=GROUPS, training_topic="training")


def audits(outputs: list[Output]) -> list[AuditRecord]:
    return [o for o in outputs if isinstance(o, AuditRecord)]


def statuses(outputs: list[Output]) -> list[tuple[int, str]]:
    return [(o.sequence, o.status.value) for o in outputs if isinstance(o, ModelVersionRecord)]


def v(k: int) -> str:
    return version_id(FEATURE_SET, SPEC, k)


def test_start_publishes_the_untrained_version_0_as_champion_once() -> None:
    core = learner()
    v0, audit = core.start(now_ms=5)
    assert isinstance(v0, ModelVersionRecord) and isinstance(audit, AuditRecord)
    assert v0.version == v(0) == core.champion
    assert (v0.status, v0.sequence, v0.parent, v0.examples_learned) == \
        (VersionStatus.CHAMPION, 0, None, 0)
    assert v0.training.from_offset is None and v0.training.to_offset is None
    assert v0.artifact.weights == {} and v0.created_at == 5
    assert (audit.decision, audit.by, audit.champion) == (Decision.BOOTSTRAP, "policy",
                                                          v0.version)
    assert core.start(now_ms=6) == []


def test_a_cut_is_published_in_shadow_and_judged_only_on_the_events_it_scored_in_shadow(
) -> None:
    core = learner()
    outputs, log = run(core, 900)
    v1 = core.version(v(1))
    assert statuses(outputs)[:2] == [(0, "champion"), (1, "shadow")]
    assert v1.training.to_offset == 299 and v(1) in core.shadows()
    # its evidence: exactly the examples whose shadow_scores carry it, with those scores
    scored = [(o, e) for o, e in log if v(1) in e.shadow_scores]
    assert scored and min(o for o, _ in scored) > v1.training.to_offset
    evidence = core.evidence(v(1))
    assert evidence.offsets == [o for o, _ in scored]
    assert evidence.scores == [e.shadow_scores[v(1)] for _, e in scored]
    ev = v1.evaluation
    assert ev is not None and (ev.look, ev.examples, ev.champion) == (2, 600, v(0))
    assert ev.from_offset == scored[0][0] and ev.to_offset == scored[599][0]
    assert [look.examples for look in ev.looks] == [300, 600]


def test_scores_a_candidate_did_not_give_in_shadow_never_enter_a_gate() -> None:
    """Examples without shadow scores (written before shadow scoring) are learned, never
    evidence; nothing is rescored: a candidate with no shadow scores is never judged."""
    core = learner()
    outputs, _ = run(core, 3000, shadows=False)
    assert core.examples_learned == 3000
    assert core.shadows() == [v(1), v(2)] and len(core.evidence(v(1))) == 0
    assert [a.decision for a in audits(outputs)] == [Decision.BOOTSTRAP]
    assert all(o.evaluation is None for o in outputs if isinstance(o, ModelVersionRecord))


def test_the_evidence_is_what_the_scorer_recorded_not_what_the_model_would_say() -> None:
    """A shadow score that differs from the candidate's artifact is judged as recorded: the
    learner never recomputes a score with hindsight (here the 'scorer' flags everyone)."""
    core = learner()
    scorer = Scorer(core)
    scorer.follow(core.start(now_ms=0))
    outputs: list[Output] = []
    for i, (features, label, groups) in enumerate(stream(3000)):
        example = scorer.example(i, features, label, groups)
        example = example.model_copy(update={"shadow_scores": {
            k: 0.99 for k in example.shadow_scores}})
        out = core.learn(i, example, now_ms=i)
        scorer.follow(out)
        outputs += out
    held = [a for a in audits(outputs) if a.version == v(1)]
    assert held and held[0].decision is Decision.HOLD, "a candidate that selects no one"
    assert core.champion == v(0)


def test_gated_mode_promotes_a_fair_better_candidate_and_retires_the_champion() -> None:
    core = learner()
    outputs, _ = run(core, 2700)
    promote = next(a for a in audits(outputs) if a.decision is Decision.PROMOTE)
    assert (promote.version, promote.by, promote.override) == (v(1), "policy", False)
    assert promote.previous_champion == v(0) and promote.champion == v(1) == core.champion
    assert {g.outcome for g in promote.gates} == {GateOutcome.PASS}
    ev = promote.evaluation
    assert ev is not None and ev.champion == v(0) and ev.look is not None
    assert all(g.lower is not None or g.upper is not None for g in promote.gates)
    assert "every gate passed at look" in promote.reason
    # per-group AUC and calibration of both models are reported beside the gates
    quality = ev.group_quality["group"]
    assert quality and sum(q.examples for q in quality.values()) == ev.examples
    assert all(q.candidate_roc_auc is not None and 0 <= q.candidate_roc_auc <= 1
               and q.champion_roc_auc == 0.5 and q.candidate_calibration_error is not None
               for q in quality.values())   # v0 scores everyone 0.5: AUC 0.5 exactly
    assert (0, "retired") in statuses(outputs) and (1, "champion") in statuses(outputs)
    record = core.version(v(1))
    assert (record.parent, record.training.from_offset, record.training.to_offset,
            record.examples_learned, record.training.topic) == (v(0), 0, 299, 300,
                                                                "training")


def test_gated_mode_holds_a_candidate_that_selects_one_group_far_less_often() -> None:
    core = learner()
    outputs, _ = run(core, 1500, disparity=1.5)
    held = [a for a in audits(outputs) if a.decision is Decision.HOLD]
    assert held, "the unfair candidates are held"
    first = held[0]
    failed = [g for g in first.gates if g.attribute == "group"
              and g.outcome is GateOutcome.FAIL]
    assert failed and all(f"{g.gate}[group]" in first.reason for g in failed)
    holding = [f"{g.gate}[{g.attribute}]" if g.attribute else g.gate for g in first.gates
               if g.outcome is GateOutcome.HOLD]
    fails = first.reason.split("fail: ", 1)[1].split("; hold:")[0]
    assert not any(h in fails.split(", ") for h in holding), "a holding gate is not a failure"
    assert all(g.lower is not None and g.upper is not None for g in failed)
    assert {g.look for g in first.gates} == {first.evaluation.look}  # type: ignore[union-attr]
    assert core.champion == v(0)      # nothing harmful serves
    assert core.version(first.version).status is VersionStatus.HELD
    assert first.version not in core.shadows()


def test_at_most_max_shadows_and_a_due_cut_waits_for_a_verdict() -> None:
    core = learner(max_shadows=1)
    outputs, _ = run(core, 1500, shadows=False)  # no evidence: v1 never gets a verdict
    assert core.shadows() == [v(1)] and core.sequence == 1
    core = learner(max_shadows=1)
    outputs, _ = run(core, 2700)                # v1 decided at 2400 paired examples
    cuts = [(o.sequence, o.training.to_offset) for o in outputs
            if isinstance(o, ModelVersionRecord) and o.status is VersionStatus.SHADOW
            and o.evaluation is None]
    decided = min(a.training_offset for a in audits(outputs)  # type: ignore[type-var]
                  if a.version == v(1) and a.decision is not Decision.BOOTSTRAP)
    assert cuts[0] == (1, 299) and cuts[1][0] == 2
    assert cuts[1][1] >= decided - 1, "v2 was cut only once v1's verdict freed the slot"


def test_when_the_champion_changes_mid_shadow_the_comparator_is_the_new_one_on_events_both_scored(
) -> None:
    core = learner()
    run(core, 2700)
    assert core.champion == v(1) and v(2) in core.shadows()
    ev2 = core.evidence(v(2))
    # v1 scored the same events in shadow before it was promoted: those pair with v2
    both = [o for o, other in zip(ev2.offsets, ev2.others, strict=True) if v(1) in other]
    assert core.version(v(2)).evaluation is not None
    assert ev2.paired_count(v(1)) == len(both) > 0
    paired = ev2.paired(v(1), core.policy, champion_threshold=0.5, candidate_threshold=0.5)
    assert len(paired) == len(both)
    assert paired.champion_scores.tolist() == [
        other[v(1)] for other in ev2.others if v(1) in other]


def test_manual_mode_records_the_gates_and_waits_for_a_person() -> None:
    core = learner(mode="manual")
    outputs, _ = run(core, 2700)
    wait = next(a for a in audits(outputs) if a.version == v(1))
    assert (wait.decision, wait.by) == (Decision.AWAIT_REVIEW, "policy")
    assert "manual mode: gates pass" in wait.reason and wait.gates
    assert core.version(v(1)).status is VersionStatus.CANDIDATE and core.champion == v(0)
    out = core.promote(v(1), by="ada", reason="reviewed the gates", now_ms=10,
                       request_id="req-1")
    assert statuses(out) == [(0, "retired"), (1, "champion")]
    audit = audits(out)[0]
    assert (audit.decision, audit.by, audit.reason, audit.override) == (
        Decision.PROMOTE, "ada", "reviewed the gates", False)
    assert audit.time == 10 and audit.request_id == "req-1" and core.champion == v(1)
    assert audit.evaluation == wait.evaluation


def test_a_person_is_refused_unless_the_last_look_passed_or_they_override() -> None:
    core = learner(mode="manual")
    run(core, 1500, disparity=1.5)
    failed = next(r for r in core.versions() if r.evaluation is not None
                  and r.evaluation.outcome is GateOutcome.FAIL)
    refused = core.promote(failed.version, by="bob", reason="looks fine", now_ms=11)
    assert len(refused) == 1 and refused[0].decision is Decision.REFUSE  # type: ignore[union-attr]
    assert "demographic_parity_ratio[group]" in refused[0].reason         # type: ignore[union-attr]
    unjudged = core.shadows()[-1]
    assert "no look" in core.promote(unjudged, by="bob", reason="x", now_ms=11)[0].reason  # type: ignore[union-attr]
    assert core.champion == v(0)
    out = core.promote(failed.version, by="bob", reason="accepted risk, ticket 42",
                       now_ms=12, override=True)
    audit = audits(out)[0]
    assert (audit.decision, audit.override, audit.by) == (Decision.PROMOTE, True, "bob")
    assert any(g.outcome is GateOutcome.FAIL for g in audit.gates)
    assert core.champion == failed.version and failed.version not in core.shadows()


def test_rollback_to_the_previous_or_a_named_champion() -> None:
    core = learner(mode="manual")
    run(core, 300)
    for k in (1,):
        core.promote(v(k), by="cy", reason="trial", now_ms=1, override=True)
    run(core, 600, start=300)
    core.promote(v(2), by="cy", reason="trial", now_ms=2, override=True)
    assert core.champion == v(2)
    out = core.rollback(by="cy", reason="alerts after v2", now_ms=20)
    assert statuses(out) == [(2, "rolled_back"), (1, "champion")]
    audit = audits(out)[0]
    assert (audit.decision, audit.previous_champion, audit.champion, audit.by) == (
        Decision.ROLLBACK, v(2), v(1), "cy")
    out = core.rollback(v(0), by="cy", reason="back to baseline", now_ms=21)
    assert statuses(out) == [(1, "rolled_back"), (0, "champion")]
    with pytest.raises(GovernanceError, match="no previous champion"):
        core.rollback(by="cy", reason="nothing retired is left", now_ms=22)


def test_people_must_name_themselves_and_a_reason_and_a_known_version() -> None:
    core = learner(mode="manual")
    run(core, 300)
    with pytest.raises(GovernanceError, match="--by"):
        core.promote(v(1), by=" ", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="--by"):
        core.promote(v(1), by="policy", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="--reason"):
        core.promote(v(1), by="ada", reason="", now_ms=1)
    with pytest.raises(GovernanceError, match="unknown version"):
        core.promote("nope", by="ada", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="already the champion"):
        core.promote(core.champion or "", by="ada", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="no previous champion"):
        core.rollback(by="ada", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="never been champion"):
        core.rollback(v(1), by="ada", reason="x", now_ms=1)


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
    assert len(versions) >= 3
    for record in versions.values():
        result = verify(record, iter(log))
        assert result.ok, result.describe()
    v1 = versions[v(1)]
    tampered = [(o, e.model_copy(update={"label": 1 - e.label})) if o == 3 else (o, e)
                for o, e in log]
    result = verify(v1, tampered)
    assert not result.ok and "DIFFERS" in result.describe()
    short = verify(v1, log[:200])
    assert not short.ok and short.actual_examples == 200


def test_records_are_strict_json_validate_back_and_carry_the_policy() -> None:
    core = learner()
    outputs, _ = run(core, 1500, disparity=1.5)
    for record in outputs:
        text = dumps(record)
        assert type(record).model_validate_json(text) == record
        assert record.policy == core.policy.on_record()
        assert record.policy_sha256 == core.policy.sha256
    assert outputs[-1].policy["promotion"]["parity_ratio_min"] == 0.8  # type: ignore[index]
    assert outputs[-1].policy["sensitive_attributes"] == GROUPS  # type: ignore[index]


def as_json_text(data: object) -> object:
    return json.loads(json.dumps(data, allow_nan=False))


def restored(core: LearnerCore, log: list[tuple[int, TrainingExample]],
             drift: DriftConfig | None = None, **promotion: object) -> LearnerCore:
    """What the shell does: restore the snapshot (under ``drift`` and the core's promotion
    policy changed by ``promotion``), read the shadows' rows back."""
    resumed = LearnerCore.restore(
        as_json_text(core.snapshot()), spec=SPEC,  # type: ignore[arg-type]
        promotion=PromotionConfig(**{**core.promotion.model_dump(), **promotion}),
        feature_set=FEATURE_SET, sensitive_attributes=GROUPS, training_topic="training",
        drift=drift)
    start = resumed.recollect_from()
    for offset, example in log:
        if start is not None and offset >= start:
            resumed.recollect(offset, example)
    assert resumed.evidence_complete()
    return resumed


@settings(max_examples=max_examples(20), deadline=None)
@given(n=st.integers(5, 60), stop=st.integers(0, 400), mode=st.sampled_from(["gated", "manual"]),
       disparity=st.sampled_from([0.0, 1.5]), shadows=st.integers(1, 3))
def test_restart_from_a_snapshot_gives_what_never_stopping_gives(
        n: int, stop: int, mode: str, disparity: float, shadows: int) -> None:
    config = {"examples_per_version": n, "first_look_examples": 40, "look_growth": 2.0,
              "max_examples_per_judgement": 160, "mode": mode, "retain_versions": 3,
              "max_shadows": shadows, "min_group_examples": 3, "min_label_examples": 3}
    straight = learner(**config)
    expected, _ = run(straight, 400, seed=n, disparity=disparity)

    first = learner(**config)
    before, log = run(first, stop, seed=n, disparity=disparity)
    resumed = restored(first, log)
    assert resumed.next_offset == stop
    after, _ = run(resumed, 400, seed=n, disparity=disparity, start=stop)

    assert [dumps(o) for o in before + after] == [dumps(o) for o in expected]
    assert as_json_text(resumed.snapshot()) == as_json_text(straight.snapshot())


def test_a_snapshot_keeps_the_shadows_looks_not_their_rows() -> None:
    core = learner()
    _, log = run(core, 1500)
    snapshot = core.snapshot()
    assert len(json.dumps(snapshot)) < 200_000
    assert [s["rows"] for s in snapshot["shadows"]] == [
        len(core.evidence(x)) for x in core.shadows()]
    resumed = restored(core, log)
    for x in core.shadows():
        assert resumed.evidence(x).offsets == core.evidence(x).offsets
        assert resumed.evidence(x).looks == core.evidence(x).looks


def test_a_person_s_decision_survives_a_restart() -> None:
    core = learner(mode="manual")
    _, log = run(core, 300)
    core.promote(v(1), by="ada", reason="ok", now_ms=1, override=True)
    resumed = restored(core, log)
    assert resumed.champion == core.champion == v(1)
    assert resumed.rollback(by="ada", reason="undo", now_ms=2)[-1].champion == v(0)  # type: ignore[union-attr]


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
    run(old, 2700)
    incumbent = old.version(old.champion or "")                  # old lineage's v1
    assert incumbent.version == v(1)
    new_spec = ModelSpec(learning_rate=0.1)
    core = LearnerCore(spec=new_spec, promotion=old.promotion, feature_set=FEATURE_SET,
                       sensitive_attributes=GROUPS)
    stale = [old.version(x) for x in old.shadows()]
    out = core.start(now_ms=0, incumbent=incumbent, stale_shadows=stale)
    boot, *holds = audits(out)
    assert (boot.decision, boot.champion) == (Decision.BOOTSTRAP, incumbent.version)
    assert [a.version for a in holds] == [s.version for s in stale]
    assert all(a.decision is Decision.HOLD and "lineage" in a.reason for a in holds)
    assert core.champion == incumbent.version
    run(core, 700, seed=2)
    first = core.version(version_id(FEATURE_SET, new_spec, 1))
    assert first.parent is None and first.lineage == core.lineage
    assert first.evaluation is not None and first.evaluation.champion == incumbent.version
    with pytest.raises(GovernanceError, match="restore"):
        learner().start(now_ms=0, incumbent=learner().start(now_ms=0)[0])  # type: ignore[arg-type]


def test_a_new_lineage_cuts_nothing_before_it_has_caught_up_with_the_log() -> None:
    """A lineage that begins on a log of 1,000 examples relearns them all before its
    first version is cut: nothing of it can be promoted while it is catching up."""
    core = learner()
    (_, boot) = core.start(now_ms=0, catch_up_to=1000)
    assert boot.catch_up_to == 1000 and "offset 1000" in boot.reason  # type: ignore[union-attr]
    outputs, _ = run(core, 1300)
    cuts = [o for o in outputs if isinstance(o, ModelVersionRecord) and o.sequence >= 1]
    assert cuts and cuts[0].training.to_offset == 999      # at the catch-up offset
    assert cuts[0].examples_learned == 1000 and core.caught_up
    assert learner().start(now_ms=0, catch_up_to=0)[1].catch_up_to == 0  # type: ignore[union-attr]


def test_a_changed_policy_is_on_the_audit_log_before_the_next_decision() -> None:
    core = learner()
    _, log = run(core, 900)
    resumed = restored(core, log, parity_ratio_min=0.7)
    (changed,) = resumed.record_policy(now_ms=99)
    assert (changed.decision, changed.by) == (Decision.POLICY_CHANGED, "policy")
    assert "promotion.parity_ratio_min" in changed.reason
    assert changed.policy_sha256 == resumed.policy.sha256 != core.policy.sha256
    assert changed.training_offset == 900 and resumed.record_policy(now_ms=100) == []
    # without the explicit call, the first call that can decide records it first
    lazy = restored(core, log, parity_ratio_min=0.7)
    after, _ = run(lazy, 2400, start=900)
    first = audits(after)[0]
    assert first.decision is Decision.POLICY_CHANGED and first.training_offset == 900
    assert all(a.policy_sha256 == lazy.policy.sha256 for a in audits(after))


def test_a_repeated_example_is_learned_once_by_the_learner_and_by_rebuild() -> None:
    """Scorers append at least once: a repeat of an event_id changes nothing, live or
    rebuilt, so rebuild --verify still holds."""
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


def test_a_policy_that_adds_an_attribute_mid_shadow_judges_every_row_under_it() -> None:
    """Rows keep the groups as recorded; each look bounds and crosses them under the policy
    in force, so an attribute or intersection added mid-shadow covers the earlier rows."""
    from governance import PromotionPolicy

    core = learner()
    run(core, 800)                               # v1 in shadow, looked at 300
    core.adopt_policy(PromotionPolicy(
        promotion=core.promotion, sensitive_attributes={**GROUPS, "band": ["x", "y"]},
        intersections=[["group", "band"]]))
    out, _ = run(core, 1300, start=800)
    assert audits(out)[0].decision is Decision.POLICY_CHANGED
    ev = core.version(v(1)).evaluation
    assert ev is not None and ev.look == 2 and ev.to_offset >= 800   # after the change
    assert {g.attribute for g in ev.gates} >= {"group", "band", "group×band"}
    paired = core.evidence(v(1)).paired(v(0), core.policy, champion_threshold=0.5,
                                        candidate_threshold=0.5)
    assert set(paired.groups["group×band"]) == {"A×unknown", "B×unknown", "C×unknown"}


def test_a_new_lineage_under_another_policy_than_the_last_on_record_says_so_first() -> None:
    old = learner()
    core = learner(parity_ratio_min=0.7)
    out = core.start(now_ms=0, policy_on_record=old.policy.on_record(), catch_up_to=0)
    assert [a.decision for a in audits(out)] == [Decision.POLICY_CHANGED, Decision.BOOTSTRAP]
    assert "promotion.parity_ratio_min" in audits(out)[0].reason
    assert old.policy.sha256 in audits(out)[0].reason
    same = learner().start(now_ms=0, policy_on_record=old.policy.on_record())
    assert [a.decision for a in audits(same)] == [Decision.BOOTSTRAP]
