"""Drift pauses automatic promotion: each cut stores its reference, the learner watches
its training examples against the champion's (and a pinned baseline), pauses with the
statistics on record, resumes by policy or by a person, and a restart or a replay of the
log makes the same decisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from governance import (
    AuditRecord,
    Decision,
    GovernanceError,
    LearnerCore,
    LogisticModel,
    ModelVersionRecord,
    Output,
    PromotionConfig,
)
from governance.rebuild import replay_decisions
from monitors.chisquare import family_alpha
from monitors.config import DriftConfig
from monitors.sketch import DriftReference, VariableSketch
from streams.config import ConfigError, load_config
from tests.governance.test_learner import SMALL, SPEC, as_json_text, restored, v
from tests.governance.training_streams import FEATURE_SET, GROUPS, run
from tests.support import REPO

#: Windows of 300 examples; references of the last 600 examples at a cut.
DRIFT = DriftConfig(watch_examples=300, min_window_events=50,
                    reference={"examples": 600, "min_examples": 300})
#: x3 (the label does not depend on it) moves by about one standard deviation from 5,000.
SHIFT = (5000, 10_000, 3.0)


def drift_learner(drift: DriftConfig = DRIFT, **promotion: object) -> LearnerCore:
    config = PromotionConfig(**{**SMALL, **promotion})  # type: ignore[arg-type]
    return LearnerCore(spec=SPEC, promotion=config, feature_set=FEATURE_SET,
                       sensitive_attributes=GROUPS, training_topic="training", drift=drift)


def audits(outputs: list[Output], *decisions: Decision) -> list[AuditRecord]:
    return [o for o in outputs if isinstance(o, AuditRecord)
            and (not decisions or o.decision in decisions)]


def test_each_cut_stores_the_sketch_of_its_last_examples_scored_by_itself() -> None:
    core = drift_learner()
    outputs, log = run(core, 1300, seed=4)
    versions = {o.version: o for o in outputs if isinstance(o, ModelVersionRecord)}
    assert versions[v(0)].drift_reference is None, "version 0 learned nothing"
    v1, v2 = core.version(v(1)), core.version(v(2))
    assert v1.drift_reference is not None and v1.drift_reference["examples"] == 300
    ref = DriftReference.from_json(v2.drift_reference or {})
    assert ref.examples == 600 and sorted(ref.features) == ["x1", "x2", "x3"]
    assert sorted(ref.impact) == ["group=A", "group=B", "group=C"]
    # The score: the frozen version's own scores of its last 600 examples.
    last = [e for o, e in log if o <= (v2.training.to_offset or 0)][-600:]
    frozen = LogisticModel.from_artifact(v2.artifact)
    assert ref.score == VariableSketch.from_values(
        [frozen.score(e.features)[0] for e in last], ks_bins=100)
    assert ref.features["x3"] == VariableSketch.from_values(
        [e.features["x3"] for e in last], ks_bins=100)


def test_a_version_cut_from_too_few_examples_keeps_its_parents_reference() -> None:
    core = drift_learner(DRIFT.model_copy(update={"reference": DRIFT.reference.model_copy(
        update={"examples": 1000, "min_examples": 700})}), max_shadows=0)
    run(core, 1000, seed=4)
    v1, v2, v3 = (core.version(v(k)) for k in (1, 2, 3))
    assert v1.drift_reference is not None and v1.drift_reference["examples"] == 300
    assert v2.drift_reference == v1.drift_reference, "600 examples < 700: the parent's"
    assert v3.drift_reference is not None and v3.drift_reference["examples"] == 900


def test_drift_pauses_promotion_with_its_statistics_and_a_passing_candidate_awaits_review(
) -> None:
    core = drift_learner()
    outputs, _ = run(core, 6000, seed=4, shift=SHIFT)
    assert not audits([o for o in outputs if not isinstance(o, AuditRecord)
                       or (o.training_offset or 0) < SHIFT[0]], Decision.PAUSE)
    (pause,) = audits(outputs, Decision.PAUSE)
    champion = core.champion
    assert (pause.by, pause.version, pause.champion) == ("policy", champion, champion)
    assert "feature x3 drifted" in pause.reason and "automatic promotion is paused" in pause.reason
    finding = pause.drift
    assert finding is not None and finding.reference_version == champion
    assert (finding.window_examples, finding.family_false_alarm_rate, finding.resume_after) \
        == (300, 0.01, 3)
    assert finding.level == pytest.approx(family_alpha(0.01, finding.statistics))
    assert finding.statistics == 3 + 1 + 3  # x1..x3, the score, groups A, B, C
    flag = next(f for f in finding.flags if f.statistic == "feature x3")
    assert flag.value > flag.threshold and flag.events == 300 and flag.p_value < finding.level
    assert core.paused
    # Learning, cutting and judging go on; a candidate whose gates pass awaits a person.
    (waiting,) = audits(outputs, Decision.AWAIT_REVIEW)
    assert "paused by drift (feature x3 drifted)" in waiting.reason
    assert not [a for a in audits(outputs, Decision.PROMOTE)
                if (a.training_offset or 0) >= pause.training_offset]  # type: ignore[operator]
    # A person may still promote it, by name.
    promoted = core.promote(waiting.version, by="ada", reason="reviewed the drift", now_ms=1)
    assert promoted[-1].decision is Decision.PROMOTE and promoted[-1].by == "ada"  # type: ignore[union-attr]


def test_a_person_resumes_by_name_with_a_reason() -> None:
    core = drift_learner()
    run(core, 5500, seed=4, shift=SHIFT)
    assert core.paused
    with pytest.raises(GovernanceError, match="--by must name a person"):
        core.resume(by="policy", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="--reason"):
        core.resume(by="ada", reason=" ", now_ms=1)
    (resume,) = core.resume(by="ada", reason="the new channel is expected", now_ms=2,
                            request_id="r-123")
    assert isinstance(resume, AuditRecord) and resume.decision is Decision.RESUME
    assert (resume.by, resume.request_id) == ("ada", "r-123")
    assert resume.reason.startswith("the new channel is expected (automatic promotion was "
                                    "paused: feature x3 drifted")
    assert resume.drift is not None and resume.drift.flags[0].statistic == "feature x3"
    assert not core.paused
    with pytest.raises(GovernanceError, match="not paused"):
        core.resume(by="ada", reason="again", now_ms=3)


def test_clean_windows_resume_by_policy() -> None:
    core = drift_learner()
    outputs, _ = run(core, 8000, seed=2, shift=(5000, 6600, 3.0))
    pause, resume = audits(outputs, Decision.PAUSE, Decision.RESUME)
    assert (pause.decision, resume.decision, resume.by) == (Decision.PAUSE, Decision.RESUME,
                                                            "policy")
    assert resume.drift is not None and resume.drift.clean_windows == 3
    assert resume.drift.flags == [] and "3 clean windows in a row" in resume.reason
    assert (resume.training_offset or 0) - 6600 < 4 * 300 and not core.paused


def test_on_drift_continue_promotes_on_the_gates_alone() -> None:
    paused, _ = run(drift_learner(), 6000, seed=4, shift=SHIFT)
    going, _ = run(drift_learner(on_drift="continue"), 6000, seed=4, shift=SHIFT)
    assert not audits(going, Decision.PAUSE, Decision.RESUME, Decision.AWAIT_REVIEW)
    (waiting,) = audits(paused, Decision.AWAIT_REVIEW)
    assert waiting.version in [a.version for a in audits(going, Decision.PROMOTE)]


@pytest.fixture(scope="module")
def never_stopping() -> tuple[LearnerCore, list[Output]]:
    straight = drift_learner()
    expected, _ = run(straight, 6500, seed=4, shift=SHIFT)
    return straight, expected


@pytest.mark.parametrize("stop", [5250, 5401, 5700])
def test_a_restart_keeps_the_pause_and_decides_what_never_stopping_decides(
        stop: int, never_stopping: tuple[LearnerCore, list[Output]]) -> None:
    straight, expected = never_stopping
    first = drift_learner()
    before, log = run(first, stop, seed=4, shift=SHIFT)
    resumed = restored(first, log, drift=DRIFT)
    assert resumed.paused == first.paused
    after, _ = run(resumed, 6500, seed=4, shift=SHIFT, start=stop)
    dumped = [o.model_dump(mode="json") for o in before + after]
    assert dumped == [o.model_dump(mode="json") for o in expected]
    assert as_json_text(resumed.snapshot()) == as_json_text(straight.snapshot())


def test_a_snapshot_holds_each_reference_once() -> None:
    core = drift_learner()
    _, log = run(core, 7000, seed=4, shift=SHIFT)
    core.pin_baseline(v(2), by="ada", reason="the quarter's normal", now_ms=1)
    snapshot = core.snapshot()
    refs = [r["drift_reference"] for r in snapshot["versions"] if r["drift_reference"]]
    assert all(isinstance(k, str) for k in refs) and set(refs) <= set(snapshot["references"])
    assert len(json.dumps(snapshot)) < 600_000
    assert restored(core, log, drift=DRIFT).version(v(2)) == core.version(v(2))


def test_rebuild_verify_replays_pauses_resumes_and_a_pinned_baseline() -> None:
    core = drift_learner()
    outputs, log = run(core, 5500, seed=4, shift=SHIFT)
    assert core.paused
    outputs += core.resume(by="ada", reason="expected", now_ms=5_500_000)
    outputs += core.pin_baseline(v(1), by="ada", reason="last quarter", now_ms=5_500_001)
    more, log2 = run(core, 9000, seed=4, shift=SHIFT, start=5500)
    outputs += more
    audit = audits(outputs)
    versions = {o.version: o for o in outputs if isinstance(o, ModelVersionRecord)}
    decisions = [a.decision for a in audit]
    assert decisions.count(Decision.PAUSE) >= 2 and Decision.PIN_BASELINE in decisions
    assert any(a.decision is Decision.RESUME and a.by == "ada" for a in audit)
    timed = [(o, 1_000 * o + 500, e) for o, e in log + log2]
    result = replay_decisions(timed, audit, versions, versions[v(1)])
    assert result.ok, result.describe()
    assert result.compared == len(audit)
    # A pause that did not happen where the log says is named.
    i = decisions.index(Decision.PAUSE)
    forged = audit[i].model_copy(update={"reason": "drift, trust me"})
    result = replay_decisions(timed, [*audit[:i], forged, *audit[i + 1:]], versions,
                              versions[v(1)])
    assert not result.ok and audit[i].audit_id in result.describe()


def test_a_pinned_baseline_is_carried_by_every_version_and_watched() -> None:
    core = drift_learner()
    run(core, 4000, seed=4)
    with pytest.raises(GovernanceError, match="no drift reference"):
        core.pin_baseline(v(0), by="ada", reason="x", now_ms=1)
    with pytest.raises(GovernanceError, match="unknown version"):
        core.pin_baseline("nope", by="ada", reason="x", now_ms=1)
    champion, audit = core.pin_baseline(v(1), by="ada", reason="Q3 normal", now_ms=2)
    assert isinstance(champion, ModelVersionRecord) and champion.version == core.champion
    assert champion.drift_baseline == core.version(v(1)).drift_reference
    assert isinstance(audit, AuditRecord) and audit.decision is Decision.PIN_BASELINE
    assert (audit.by, audit.version) == ("ada", v(1)) and audit.drift is not None
    assert audit.drift.baseline_version == v(1)
    outputs, _ = run(core, 6000, seed=4, shift=SHIFT, start=4000)
    cuts = [o for o in outputs if isinstance(o, ModelVersionRecord) and o.sequence > 3]
    assert cuts and all(c.drift_baseline == champion.drift_baseline for c in cuts)
    (pause,) = audits(outputs, Decision.PAUSE)
    assert pause.drift is not None and pause.drift.baseline_version == v(1)
    assert pause.drift.statistics == 2 * 7, "every statistic against both references"
    assert {f.statistic for f in pause.drift.flags} & {"feature x3", "baseline feature x3"}


@pytest.mark.parametrize(("path", "value", "named", "says"), [
    (("model", "promotion", "on_drift"), "stop", "model.promotion.on_drift",
     "'pause' or 'continue'"),
    (("monitors", "drift", "watch_examples"), 50, "monitors.drift:",
     "watch_examples (50) must be at least min_window_events (100)"),
    (("monitors", "drift", "reference", "min_examples"), 5000, "monitors.drift.reference:",
     "min_examples (5000) cannot exceed examples (2000)"),
])
def test_a_bad_drift_setting_is_refused_naming_its_path(
        tmp_path: Path, path: tuple[str, ...], value: object, named: str, says: str) -> None:
    raw = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
    section = raw
    for key in path[:-1]:
        section = section.setdefault(key, {})
    section[path[-1]] = value
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert named in str(error.value) and says in str(error.value), str(error.value)


def test_the_quickstart_pauses_by_default_and_the_settings_are_on_record() -> None:
    config = load_config(REPO / "examples" / "quickstart.yaml")
    assert config.model.promotion.on_drift == "pause"
    core = LearnerCore(spec=config.model.spec, promotion=config.model.promotion,
                       feature_set=config.features.identity,
                       sensitive_attributes=config.monitors.sensitive_attributes,
                       drift=config.monitors.drift)
    policy = core.policy.on_record()
    assert policy["promotion"]["on_drift"] == "pause"
    assert policy["drift"]["features"] == config.monitors.drift.features
    assert policy["drift"]["watch_examples"] == 1000
    assert "window_seconds" not in policy["drift"], "the scorers' window is not the policy"
    assert "source" not in policy["drift"]["reference"]


def test_a_new_lineage_keeps_a_pause_the_audit_log_left_and_replays_it() -> None:
    old = drift_learner()
    outputs, log = run(old, 5500, seed=4, shift=SHIFT)
    (pause,) = audits(outputs, Decision.PAUSE)
    incumbent = old.version(old.champion or "")
    new = LearnerCore(spec=SPEC.model_copy(update={"learning_rate": 0.04}),
                      promotion=old.promotion, feature_set=FEATURE_SET,
                      sensitive_attributes=GROUPS, training_topic="training", drift=DRIFT)
    boot = new.start(now_ms=9, incumbent=incumbent, drift_paused=pause.drift)
    (record,) = audits(boot)
    assert new.paused and new.lineage != old.lineage
    assert "automatic promotion stays paused by drift (feature x3 drifted)" in record.reason
    assert record.drift == pause.drift
    more = []
    for offset, example in log[:1500]:
        more += new.learn(offset, example, now_ms=1_000 * offset + 500)
    assert new.paused
    versions = {o.version: o for o in boot + more if isinstance(o, ModelVersionRecord)}
    versions[incumbent.version] = incumbent
    first = next(v for v in versions.values() if v.lineage == new.lineage)
    result = replay_decisions([(o, 1_000 * o + 500, e) for o, e in log[:1500]],
                              audits(boot + more), versions, first)
    assert result.ok, result.describe()


def test_a_restart_under_changed_drift_settings_is_on_record_and_replays() -> None:
    shift = (5000, 6600, 3.0)
    core = drift_learner()
    outputs, log = run(core, 5500, seed=4, shift=shift)
    assert core.paused
    looser = DRIFT.model_copy(update={"resume_after": 2})
    resumed = restored(core, log, drift=looser)
    assert resumed.paused, "the pause survives the restart"
    changed = resumed.record_policy(now_ms=5_500_000)
    assert "drift.resume_after" in changed[0].reason  # type: ignore[union-attr]
    more, log2 = run(resumed, 8000, seed=4, shift=shift, start=5500)
    resume = audits(more, Decision.RESUME)
    assert resume and resume[0].drift is not None and resume[0].drift.resume_after == 2
    audit = audits(outputs + changed + more)
    versions = {o.version: o for o in outputs + more if isinstance(o, ModelVersionRecord)}
    result = replay_decisions([(o, 1_000 * o + 500, e) for o, e in log + log2], audit,
                              versions, versions[v(1)])
    assert result.ok, result.describe()
