"""Rebuild a version from the training log, and verify it is the version that was published.

A version is "the examples at offsets [from, to] of ``training``, learned in order by this
model config and River version". :func:`rebuild` relearns exactly that, with the same
rule for skipping examples as the learner (:func:`governance.learner.learnable`);
:func:`verify` compares the result with the record: same artifact SHA-256 (hence the same
weights, scaler statistics and optimizer state, bit for bit) and the same example count.
This is ``streambed model rebuild VERSION --verify``: the CLI reads the record from
``model.versions``, the examples from ``training``, and prints the :class:`Verification`.

>>> from governance.config import ModelSpec
>>> from governance.records import TrainingExample
>>> ex = lambda i: TrainingExample(event_id=f"e{i}", entity_id="u", features={"x": 1.0},
...     label=1, score=0.5, decision=1, model_version="v0", feature_set="fs", event_ts=0,
...     label_ts=0)
>>> model, learned = rebuild([(0, ex(0)), (1, ex(1)), (2, ex(2))], spec=ModelSpec(),
...                          feature_set="fs", from_offset=0, to_offset=1)
>>> learned, model.iterations
(2, 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.artifact import RIVER_VERSION, LogisticModel, artifact_sha256
from governance.config import ModelSpec, PromotionPolicy
from governance.learner import GovernanceError, LearnerCore
from governance.lineage import RecentIds, learnable
from governance.records import (
    POLICY,
    AuditRecord,
    Decision,
    ModelVersionRecord,
    TrainingExample,
    VersionStatus,
)


def rebuild(examples: Iterable[tuple[int, TrainingExample]], *, spec: ModelSpec,
            feature_set: str, from_offset: int | None,
            to_offset: int | None) -> tuple[LogisticModel, int]:
    """Learn the examples at offsets [from, to] from scratch, in the order given (which
    must be offset order); return the model and how many examples it learned. Examples
    past ``to_offset`` are not read further (the iterable can be an open consumer)."""
    model = LogisticModel(spec)
    learned = 0
    if from_offset is None or to_offset is None:
        return model, learned
    previous = -1
    recent = RecentIds()
    for offset, example in examples:
        if offset <= previous:
            raise ValueError(f"training examples out of order: {offset} after {previous}")
        previous = offset
        if offset > to_offset:
            break
        if offset < from_offset or not learnable(example, feature_set):
            continue
        if not recent.check_and_add(example.event_id):
            continue  # a scorer's at-least-once repeat, skipped exactly as the learner did
        model.learn(example.features, example.label)
        learned += 1
    return model, learned


@dataclass(frozen=True)
class Verification:
    """The outcome of ``rebuild --verify``."""

    version: str
    ok: bool
    expected_sha256: str
    actual_sha256: str
    expected_examples: int
    actual_examples: int
    recorded_river_version: str
    river_version: str

    def describe(self) -> str:
        if self.ok:
            return (f"{self.version}: rebuilt identically from {self.actual_examples} "
                    f"examples (artifact sha256 {self.actual_sha256})")
        lines = [f"{self.version}: rebuild DIFFERS"]
        if self.expected_examples != self.actual_examples:
            lines.append(f"  examples learned: recorded {self.expected_examples}, "
                         f"relearned {self.actual_examples} (is the training log complete?)")
        lines.append(f"  artifact sha256: recorded {self.expected_sha256}, "
                     f"rebuilt {self.actual_sha256}")
        if self.recorded_river_version != self.river_version:
            lines.append(f"  River {self.recorded_river_version} made it, this is River "
                         f"{self.river_version}")
        return "\n".join(lines)


def verify(record: ModelVersionRecord,
           examples: Iterable[tuple[int, TrainingExample]]) -> Verification:
    """Rebuild the record's version from the examples and compare it with the record."""
    model, learned = rebuild(examples, spec=record.model, feature_set=record.feature_set,
                             from_offset=record.training.from_offset,
                             to_offset=record.training.to_offset)
    sha = artifact_sha256(model.to_artifact())
    return Verification(
        version=record.version,
        ok=sha == record.artifact_sha256 and learned == record.examples_learned,
        expected_sha256=record.artifact_sha256, actual_sha256=sha,
        expected_examples=record.examples_learned, actual_examples=learned,
        recorded_river_version=record.river_version, river_version=RIVER_VERSION)


#: The decisions a person makes: a replay applies them as recorded, where they were made
#: (a pause, and a resume by policy, are re-made from the examples like every verdict).
_PEOPLE = (Decision.PROMOTE, Decision.REFUSE, Decision.ROLLBACK, Decision.RESUME,
           Decision.PIN_BASELINE)


@dataclass(frozen=True)
class DecisionReplay:
    """The outcome of replaying a lineage's decisions from the training log."""

    lineage: str
    ok: bool
    compared: int
    #: Recorded decisions past where the replay got (the log was shorter than the learner's).
    not_replayed: int
    #: Replayed decisions the learner has not published yet (it is behind the log's end).
    not_yet_published: int
    mismatches: list[str]

    def describe(self) -> str:
        head = (f"decisions of lineage {self.lineage}: {self.compared} replayed from the "
                f"training log")
        if self.ok:
            tail = ""
            if self.not_yet_published:
                tail = f" ({self.not_yet_published} more not yet published by the learner)"
            return f"{head}, every one identical to model.audit{tail}"
        lines = [f"{head}: {len(self.mismatches)} DIFFER from model.audit"]
        lines += [f"  {m}" for m in self.mismatches[:10]]
        if self.not_replayed:
            lines.append(f"  {self.not_replayed} recorded decisions were not replayed (is the "
                         f"training log complete?)")
        return "\n".join(lines)


def _comparable(record: AuditRecord) -> dict[str, Any]:
    """What must match: everything but the environment (a rebuild may run elsewhere)."""
    return record.model_dump(mode="json", exclude={"environment"})


def _audit_order(record: AuditRecord) -> int:
    return int(record.audit_id.rsplit(":", 1)[-1])


def replay_decisions(records: Iterable[tuple[int, int, TrainingExample | None]],
                     audit: Sequence[AuditRecord],
                     versions: Mapping[str, ModelVersionRecord],
                     record: ModelVersionRecord) -> DecisionReplay:
    """Relearn ``record``'s lineage from the start of the training log and re-make its
    decisions; compare them, record by record, with the lineage's audit log.

    ``records``: every training record in offset order as ``(offset, timestamp_ms,
    example)``, None for a record that is not a valid example (the learner skipped it).
    What the log cannot tell is taken from the audit log, where the learner recorded it:
    the lineage's start (its time, incumbent, catch-up offset and policy), each person's
    decision (promote, refuse, rollback, resume, pin_baseline) and each policy change, each
    applied at the training offset it was made at. Every gate verdict, promotion and hold
    by the policy, every drift pause and resume by policy, is re-made from the examples
    (seeded resampling, the drift watch's windows counted in examples: bit for bit) and
    must equal the recorded one.
    """
    lineage = record.lineage
    mine = sorted((a for a in audit if a.audit_id.startswith(f"{lineage}:")),
                  key=_audit_order)
    unique = list({a.audit_id: a for a in mine}.values())
    boot_index = next((i for i, a in enumerate(unique)
                       if a.decision is Decision.BOOTSTRAP), None)
    if boot_index is None or unique[boot_index].policy is None:
        return DecisionReplay(lineage, False, 0, len(unique), 0, [
            "no bootstrap record with its policy on model.audit for this lineage (recorded "
            "before the policy was on record?): nothing to replay from"])
    # A lineage that began under another policy than the last one on record opens with
    # policy_changed (against a policy the log does not hold): taken as recorded.
    unique = unique[boot_index:]
    boot = unique[0]
    policy = PromotionPolicy.model_validate(boot.policy)
    core = LearnerCore(spec=record.model, promotion=policy.promotion,
                       feature_set=record.feature_set,
                       sensitive_attributes=policy.sensitive_attributes,
                       intersections=policy.intersections,
                       favourable_outcome=policy.favourable_outcome,
                       training_topic=record.training.topic, drift=policy.drift)
    core.audit_sequence = boot_index
    incumbent = None
    if boot.previous_champion is not None and boot.previous_champion in versions:
        incumbent = versions[boot.previous_champion].model_copy(
            update={"status": VersionStatus.CHAMPION})
    stale = [versions[a.version].model_copy(update={"status": VersionStatus.SHADOW})
             for a in unique[1:] if a.decision is Decision.HOLD and a.by == POLICY
             and a.training_offset == boot.training_offset and a.version in versions
             and versions[a.version].lineage != lineage]
    replayed = core.start(boot.time, incumbent=incumbent, catch_up_to=boot.catch_up_to,
                          stale_shadows=stale, drift_paused=boot.drift)
    schedule: dict[int, list[AuditRecord]] = {}
    for a in unique[1:]:
        if a.decision is Decision.POLICY_CHANGED or (a.by != POLICY and a.decision in _PEOPLE):
            schedule.setdefault(a.training_offset or 0, []).append(a)

    refused: list[str] = []

    def apply(offset: int) -> None:
        for a in schedule.pop(offset, []):
            try:
                apply_one(a)
            except GovernanceError as exc:  # the replay is not where the learner was
                refused.append(f"{a.audit_id} ({a.decision.value} {a.version} by {a.by}) "
                               f"cannot be applied at offset {a.training_offset}: {exc}")

    def apply_one(a: AuditRecord) -> None:
        if a.decision is Decision.POLICY_CHANGED:
            core.adopt_policy(PromotionPolicy.model_validate(a.policy))
            replayed.extend(core.record_policy(a.time))
        elif a.decision is Decision.ROLLBACK:
            replayed.extend(core.rollback(a.version, by=a.by, reason=a.reason,
                                          now_ms=a.time, request_id=a.request_id))
        elif a.decision is Decision.RESUME:
            replayed.extend(core.resume(by=a.by, reason=a.reason.split(
                " (automatic promotion was paused: ", 1)[0], now_ms=a.time,
                request_id=a.request_id))
        elif a.decision is Decision.PIN_BASELINE:
            replayed.extend(core.pin_baseline(
                a.version, by=a.by, reason=a.reason.split(" (the drift reference of ", 1)[0],
                now_ms=a.time, request_id=a.request_id))
        else:
            reason = a.reason.split(" (refused: ", 1)[0]
            replayed.extend(core.promote(a.version, by=a.by, reason=reason,
                                         now_ms=a.time, override=a.override,
                                         request_id=a.request_id))

    for offset, timestamp, example in records:
        apply(offset)
        if offset < core.next_offset:
            continue
        if example is None:
            core.skip(offset)
        else:
            replayed.extend(core.learn(offset, example, now_ms=timestamp))
    for offset in sorted(schedule):
        if offset <= core.next_offset:
            apply(offset)
    made = {a.audit_id: a for a in replayed if isinstance(a, AuditRecord)}
    mismatches = list(refused)
    compared = 0
    not_replayed = 0
    for a in unique:
        again = made.get(a.audit_id)
        if again is None:
            not_replayed += 1
            continue
        compared += 1
        if _comparable(again) != _comparable(a):
            mismatches.append(f"{a.audit_id} ({a.decision.value} {a.version}): recorded "
                              f"{_summary(a)}; replayed {_summary(again)}")
    if not_replayed:
        mismatches.append(f"{not_replayed} recorded decisions were not replayed")
    published = {a.audit_id for a in unique}
    return DecisionReplay(lineage, not mismatches, compared, not_replayed,
                          sum(1 for k in made if k not in published), mismatches)


def _summary(a: AuditRecord) -> str:
    gates = ",".join(f"{g.gate}{'/' + g.attribute if g.attribute else ''}={g.outcome.value}"
                     for g in a.gates)
    return (f"{a.decision.value} {a.version} champion={a.champion} "
            f"offset={a.training_offset} [{gates}]")
