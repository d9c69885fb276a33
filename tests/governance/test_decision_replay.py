"""``rebuild --verify`` replays decisions: the lineage relearned from the training log
re-makes every verdict, promotion and hold, and they equal the audit log's."""

from __future__ import annotations

from governance import AuditRecord, Decision, LearnerCore, ModelVersionRecord, Output
from governance.rebuild import replay_decisions
from governance.records import Environment
from tests.governance.test_learner import SPEC, learner, restored, v
from tests.governance.training_streams import FEATURE_SET, GROUPS, run


def _split(outputs: list[Output]) -> tuple[list[AuditRecord], dict[str, ModelVersionRecord]]:
    audit = [o for o in outputs if isinstance(o, AuditRecord)]
    versions = {o.version: o for o in outputs if isinstance(o, ModelVersionRecord)}
    return audit, versions


def _log(log: list) -> list:
    return [(o, 1_000 * o + 500, e) for o, e in log]  # the timestamps run() used


def test_a_replay_re_makes_every_decision_of_the_lineage_bit_for_bit() -> None:
    core = learner()
    outputs, log = run(core, 3000)
    audit, versions = _split(outputs)
    assert {a.decision for a in audit} >= {Decision.BOOTSTRAP, Decision.PROMOTE,
                                           Decision.HOLD}
    result = replay_decisions(_log(log), audit, versions, versions[v(1)])
    assert result.ok, result.describe()
    assert result.compared == len(audit) and result.not_yet_published == 0
    assert "every one identical" in result.describe()


def test_a_replay_applies_people_and_policy_changes_where_they_happened() -> None:
    core = learner(mode="manual")
    outputs, log = run(core, 600)
    outputs += core.promote(v(1), by="ada", reason="trial", now_ms=7, override=True)
    core = restored(core, log, parity_ratio_min=0.7)
    outputs += core.record_policy(now_ms=8)
    more, log2 = run(core, 2400, start=600)
    outputs += more
    outputs += core.rollback(by="ada", reason="undo", now_ms=9)
    audit, versions = _split(outputs)
    decisions = [a.decision for a in audit]
    assert Decision.POLICY_CHANGED in decisions and Decision.ROLLBACK in decisions
    result = replay_decisions(_log(log + log2), audit, versions, versions[v(1)])
    assert result.ok, result.describe()
    assert result.compared == len(audit)


def test_a_decision_that_does_not_replay_is_named() -> None:
    core = learner()
    outputs, log = run(core, 2700)
    audit, versions = _split(outputs)
    promoted = next(i for i, a in enumerate(audit) if a.decision is Decision.PROMOTE)
    forged = audit[promoted].model_copy(update={"reason": "every gate passed, trust me"})
    tampered = [*audit[:promoted], forged, *audit[promoted + 1:]]
    result = replay_decisions(_log(log), tampered, versions, versions[v(1)])
    assert not result.ok and "DIFFER" in result.describe()
    assert audit[promoted].audit_id in result.describe()
    # a log with one label flipped judges other evidence: the decisions differ too
    flipped = [(o, t, e.model_copy(update={"label": 1 - e.label}) if o == 1500 else e)
               for o, t, e in _log(log)]
    assert not replay_decisions(flipped, audit, versions, versions[v(1)]).ok


def test_the_environment_is_on_record_but_not_part_of_the_comparison() -> None:
    env = Environment(package_version="0.1.0", python_version="3.11.0", platform="x",
                      river_version="0.22.0", dependencies_sha256="0" * 64)
    core = LearnerCore(spec=SPEC, promotion=learner().promotion, feature_set=FEATURE_SET,
                       sensitive_attributes=GROUPS, environment=env)
    outputs, log = run(core, 2700)
    audit, versions = _split(outputs)
    assert all(a.environment == env for a in audit)
    assert all(r.environment == env for r in versions.values())
    result = replay_decisions(_log(log), audit, versions, versions[v(1)])
    assert result.ok, result.describe()

