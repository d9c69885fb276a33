"""The learner's core: a deterministic state machine over the ``training`` log.

The shell feeds it every training record in offset order and publishes what it returns
(:class:`~governance.records.ModelVersionRecord` to ``model.versions``,
:class:`~governance.records.AuditRecord` to ``model.audit``). It has no clock and no I/O:
times come in as arguments (pass the training record's timestamp as ``now_ms`` to
:meth:`LearnerCore.learn` and a replay reproduces the records exactly).

Lifecycle
---------
- :meth:`LearnerCore.start` publishes version 0, the untrained model, as the first
  champion (the bootstrap rule: it scores every example 0.5, so it treats every group
  alike; every later version must beat it on performance without disparity). The scorer
  can serve v0 before the learner exists: :func:`version_id` (sequence 0) and
  ``LogisticModel(spec)``. ``start(now_ms, incumbent=record)`` instead keeps a champion of
  another lineage serving (after a config change). The first ``learn`` starts a learner
  that was not started.
- One challenger learns every example, exactly once, in offset order. Just before learning
  an example it scores it (prequential); the last ``evaluation_window`` examples are kept
  with both that score and the champion's.
- Every ``examples_per_version`` examples the challenger is cut as a candidate version
  (its parent is the previous cut) and compared with the champion on the window. ``gated``:
  promoted when every gate passes, else held with the failing gates named. ``manual``:
  recorded, awaiting a person.
- :meth:`LearnerCore.promote` (a person; refused when gates do not pass, unless
  ``override``) and :meth:`LearnerCore.rollback` (to a past champion, the previous one by
  default) change which version serves. They never change what the challenger learns:
  the challenger is one continuous learner, so version k is always "offsets [from, to_k]
  learned in order", and :func:`governance.rebuild.rebuild` can relearn it.

Scores used by the gates, per example in the window (for a version ``v`` whose training
range ends at ``to``): the score of the lineage just before it learned the example when
``offset <= to`` (prequential), otherwise ``v``'s own frozen score (it had not learned the
example). The champion's score is the one in the example when that champion scored it
(given at scoring time), else the same rule.

>>> from governance.records import TrainingExample
>>> core = LearnerCore(spec=ModelSpec(), promotion=PromotionConfig(examples_per_version=2,
...                    min_label_examples=1, min_group_examples=1), feature_set="fs")
>>> [r.status.value for r in core.start(now_ms=0) if isinstance(r, ModelVersionRecord)]
['champion']
>>> ex = lambda x, y: TrainingExample(event_id=f"e{x}", entity_id="u", features={"x": x},
...     label=y, score=0.5, decision=1, model_version=core.champion, feature_set="fs",
...     event_ts=0, label_ts=0)
>>> core.learn(0, ex(1.0, 1), now_ms=1)
[]
>>> held, audit = core.learn(1, ex(-1.0, 0), now_ms=2)  # x=-1 scored high: AUC 0
>>> held.version, held.status.value, held.training.to_offset, held.parent
('fs-316b4076-v1', 'held', 1, 'fs-316b4076-v0')
>>> audit.decision.value, audit.reason, audit.champion
('hold', 'gates fail: roc_auc', 'fs-316b4076-v0')
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.artifact import RIVER_VERSION, LogisticModel, artifact_sha256
from governance.config import ModelSpec, PromotionConfig
from governance.evaluation import bounded_group, compare, impact, performance
from governance.records import (
    POLICY,
    AuditRecord,
    Decision,
    Evaluation,
    GateOutcome,
    ImpactStats,
    ModelVersionRecord,
    PerformanceStats,
    TrainingExample,
    TrainingRange,
    VersionStatus,
)

Output = ModelVersionRecord | AuditRecord
SNAPSHOT_FORMAT = "streambed.learner/1"


class GovernanceError(ValueError):
    """A request the lifecycle cannot honour (unknown version, offset out of order, ...)."""


def lineage_of(feature_set: str, spec: ModelSpec) -> str:
    """Versions of one feature set learned by one model config share a lineage.

    >>> lineage_of("0123456789ab", ModelSpec())
    '0123456789ab-316b4076'
    """
    return f"{feature_set}-{spec.config_hash[:8]}"


def version_id(feature_set: str, spec: ModelSpec, sequence: int) -> str:
    """The deterministic id of a lineage's sequence-th version (0: untrained)."""
    return f"{lineage_of(feature_set, spec)}-v{sequence}"


#: How many recent event ids the learner remembers to drop a repeated example.
DUPLICATE_WINDOW = 10_000


class RecentIds:
    """The event ids of the last ``size`` examples learned (one rule for learner and
    rebuild). Scorers append to ``training`` at least once: a scorer killed after sending
    an example but before recording it sends it again right after restarting, so a repeat
    lands within a few thousand offsets of the original, and is learned once.

    >>> ids = RecentIds(2)
    >>> [ids.check_and_add(e) for e in ("a", "b", "a", "c", "a")]
    [True, True, False, True, True]
    """

    def __init__(self, size: int = DUPLICATE_WINDOW) -> None:
        self.size = size
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def check_and_add(self, event_id: str) -> bool:
        """True (and remembered) when the id is new; False for a repeat."""
        if event_id in self._ids:
            return False
        self._order.append(event_id)
        self._ids.add(event_id)
        if len(self._order) > self.size:
            self._ids.discard(self._order.popleft())
        return True

    def to_data(self) -> list[str]:
        return list(self._order)

    @classmethod
    def from_data(cls, data: Sequence[str], size: int = DUPLICATE_WINDOW) -> RecentIds:
        ids = cls(size)
        for event_id in data:
            ids.check_and_add(str(event_id))
        return ids


def learnable(example: TrainingExample, feature_set: str) -> bool:
    """Whether the lineage of ``feature_set`` learns this example (one rule for learner
    and rebuild): examples of another feature set are skipped, never learned."""
    return example.feature_set == feature_set


@dataclass(slots=True)
class _Seen:
    """One window entry: what both models need to be judged on this example."""

    offset: int
    x: dict[str, float]
    prequential: float          # the challenger's score just before it learned x
    label: int
    served_score: float
    served_decision: int
    served_version: str
    groups: dict[str, str]



def _window_to_data(window: Sequence[_Seen]) -> dict[str, Any]:
    """The window as plain data; feature names are written once per distinct set."""
    names: dict[tuple[str, ...], int] = {}
    rows = []
    for s in window:
        key = tuple(s.x)
        index = names.setdefault(key, len(names))
        rows.append([s.offset, index, list(s.x.values()), s.prequential, s.label,
                     s.served_score, s.served_decision, s.served_version, s.groups])
    return {"feature_names": [list(k) for k in names], "rows": rows}


def _window_from_data(data: Mapping[str, Any]) -> list[_Seen]:
    names = [list(n) for n in data["feature_names"]]
    return [_Seen(offset, dict(zip(names[index], values, strict=True)), *rest)
            for offset, index, values, *rest in data["rows"]]


class LearnerCore:
    """Learns the challenger, cuts versions, applies the promotion policy; see module doc."""

    def __init__(self, *, spec: ModelSpec, promotion: PromotionConfig, feature_set: str,
                 sensitive_attributes: Mapping[str, Sequence[str]] | None = None,
                 training_topic: str | None = None) -> None:
        self.spec = spec
        self.promotion = promotion
        self.feature_set = feature_set
        self.attributes = {a: list(g) for a, g in (sensitive_attributes or {}).items()}
        self.training_topic = training_topic
        self.lineage = lineage_of(feature_set, spec)
        self.challenger = LogisticModel(spec)
        self.examples_learned = 0
        self.examples_skipped = 0
        self.examples_repeated = 0
        self._recent = RecentIds()
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self.sequence = -1                  # last version cut (0 = bootstrap)
        self.audit_sequence = 0
        self.champion: str | None = None
        #: The last version cut (the parent of the next one).
        self.latest: str | None = None
        self.champion_history: list[str] = []
        self._versions: dict[str, ModelVersionRecord] = {}
        self._window: deque[_Seen] = deque(maxlen=promotion.evaluation_window)
        self._frozen: dict[str, LogisticModel] = {}

    # ---------------------------------------------------------------- queries

    @property
    def next_offset(self) -> int:
        """The training offset to seek to (0 when nothing was read)."""
        return 0 if self.last_offset is None else self.last_offset + 1

    def version(self, version: str) -> ModelVersionRecord:
        """A retained version's current record; GovernanceError if unknown here."""
        try:
            return self._versions[version]
        except KeyError:
            raise GovernanceError(
                f"unknown version {version!r}: not among this learner's retained versions "
                f"(lineage {self.lineage})") from None

    def versions(self) -> list[ModelVersionRecord]:
        """Retained versions, oldest first."""
        return sorted(self._versions.values(),
                      key=lambda r: (r.lineage == self.lineage, r.sequence))

    def served(self) -> tuple[PerformanceStats, dict[str, ImpactStats]]:
        """How the serving champions did on the window: the scores and decisions they gave
        at scoring time against the labels (what the learner's /metrics export)."""
        window = list(self._window)
        labels = [s.label for s in window]
        return (performance([s.served_score for s in window], labels),
                impact([s.served_decision for s in window], labels,
                       [s.groups for s in window], self.attributes,
                       self.promotion.min_group_examples))

    def evaluate(self, version: str | None = None) -> Evaluation:
        """A version (default: the latest) against the champion on the current window."""
        return self._evaluate(self.version(version or self.latest or ""))

    # ---------------------------------------------------------------- lifecycle

    def start(self, now_ms: int, incumbent: ModelVersionRecord | None = None) -> list[Output]:
        """Begin the lineage; [] if already started.

        Without ``incumbent``: publish the untrained version 0 as the first champion (the
        bootstrap rule). With the champion now serving from another lineage (the feature
        set or model config changed): keep it serving, record that it was adopted, and
        judge this lineage's first version against it; version 0 is then not published.
        """
        if self.sequence >= 0:
            return []
        if incumbent is None:
            record = self._cut_record(now_ms, VersionStatus.CHAMPION)
            self._set_champion(record.version)
            return [record, self._audit(now_ms, record.version, Decision.BOOTSTRAP, POLICY,
                                        "version 0 is the untrained model: it scores every "
                                        "example 0.5 and treats every group alike",
                                        previous=None)]
        if incumbent.lineage == self.lineage:
            raise GovernanceError(f"{incumbent.version} is of this lineage: restore the "
                                  f"learner's snapshot instead of starting it again")
        if incumbent.status is not VersionStatus.CHAMPION:
            raise GovernanceError(f"{incumbent.version} is {incumbent.status.value}, "
                                  f"not the champion")
        self.sequence = 0
        self._versions[incumbent.version] = incumbent
        self._set_champion(incumbent.version)
        return [self._audit(now_ms, incumbent.version, Decision.BOOTSTRAP, POLICY,
                            f"lineage {self.lineage} begins; the serving champion "
                            f"{incumbent.version} stays and judges its first version",
                            previous=incumbent.version)]

    def learn(self, offset: int, example: TrainingExample, now_ms: int) -> list[Output]:
        """Score-then-learn one training example; cut and judge a version every N."""
        if self.last_offset is not None and offset <= self.last_offset:
            raise GovernanceError(f"offset {offset} already learned (last {self.last_offset}); "
                                  f"seek to {self.next_offset}")
        out = self.start(now_ms)
        self.last_offset = offset
        if not learnable(example, self.feature_set):
            self.examples_skipped += 1
            return out
        if not self._recent.check_and_add(example.event_id):
            self.examples_repeated += 1
            return out
        if self.first_offset is None:
            self.first_offset = offset
        x = self.spec.to_x(example.features)
        prequential = self.challenger.predict_x(x)
        self.challenger.learn_x(x, example.label)
        self.examples_learned += 1
        self._window.append(_Seen(
            offset, x, prequential, example.label, example.score, example.decision,
            example.model_version,
            {a: bounded_group(example.groups.get(a), g) for a, g in self.attributes.items()}))
        if self.examples_learned % self.promotion.examples_per_version == 0:
            out += self._cut(now_ms)
        return out

    def skip(self, offset: int) -> None:
        """Pass over a training record that is not a valid example (counted, not learned):
        its offset is covered, so a restart does not read it again."""
        if self.last_offset is not None and offset <= self.last_offset:
            raise GovernanceError(f"offset {offset} already read (last {self.last_offset})")
        self.last_offset = offset
        self.examples_skipped += 1

    def promote(self, version: str, *, by: str, reason: str, now_ms: int,
                override: bool = False, request_id: str | None = None) -> list[Output]:
        """A person promotes a version: judged now against the champion on the window.

        Refused (an audit record, no change) when a gate does not pass, unless ``override``,
        which is recorded as such. ``request_id`` is copied into the audit record, so a CLI
        that sent the request can find its answer.
        """
        _require_person(by, reason)
        record = self.version(version)
        if version == self.champion:
            raise GovernanceError(f"{version} is already the champion")
        evaluation = self._evaluate(record)
        passed = evaluation.outcome is GateOutcome.PASS
        if not passed and not override:
            why = f"{reason} (refused: gates did not pass: {', '.join(evaluation.failing())})"
            return [self._audit(now_ms, version, Decision.REFUSE, by, why,
                                previous=self.champion, evaluation=evaluation,
                                request_id=request_id)]
        return self._promote(record, now_ms, by, reason, evaluation,
                             override=override and not passed, request_id=request_id)

    def rollback(self, to_version: str | None = None, *, by: str, reason: str,
                 now_ms: int, request_id: str | None = None) -> list[Output]:
        """A person puts a past champion back (default: the one before the current)."""
        _require_person(by, reason)
        if self.champion is None:
            raise GovernanceError("nothing to roll back: no champion yet")
        if to_version is None:
            past = [v for v in self.champion_history[:-1] if v in self._versions
                    and self._versions[v].status is VersionStatus.RETIRED]
            if not past:
                raise GovernanceError("no previous champion to roll back to")
            to_version = past[-1]
        target = self.version(to_version)
        if to_version == self.champion:
            raise GovernanceError(f"{to_version} is already the champion")
        if to_version not in self.champion_history:
            raise GovernanceError(f"{to_version} has never been champion: promote it instead")
        previous = self.champion
        evaluation = self._evaluate(target)      # against the champion it replaces
        out: list[Output] = [self._set_status(previous, VersionStatus.ROLLED_BACK, now_ms)]
        out.append(self._set_status(target.version, VersionStatus.CHAMPION, now_ms))
        self._set_champion(target.version)
        out.append(self._audit(now_ms, target.version, Decision.ROLLBACK, by, reason,
                               previous=previous, evaluation=evaluation,
                               request_id=request_id))
        return out

    # ---------------------------------------------------------------- internals

    def _cut(self, now_ms: int) -> list[Output]:
        record = self._cut_record(now_ms, VersionStatus.CANDIDATE)
        evaluation = self._evaluate(record)
        record = record.model_copy(update={"evaluation": evaluation})
        self._versions[record.version] = record
        if self.promotion.mode == "manual":
            out: list[Output] = [record, self._audit(
                now_ms, record.version, Decision.AWAIT_REVIEW, POLICY,
                f"manual mode: gates {evaluation.outcome.value}; a person decides",
                previous=self.champion, evaluation=evaluation)]
        elif evaluation.outcome is GateOutcome.PASS:
            out = self._promote(record, now_ms, POLICY, "every gate passed", evaluation,
                                override=False)
        else:
            held = self._set_status(record.version, VersionStatus.HELD, now_ms)
            out = [held, self._audit(
                now_ms, record.version, Decision.HOLD, POLICY,
                f"gates {evaluation.outcome.value}: {', '.join(evaluation.failing())}",
                previous=self.champion, evaluation=evaluation)]
        self._evict()
        return out

    def _cut_record(self, now_ms: int, status: VersionStatus) -> ModelVersionRecord:
        parent = self.latest
        self.sequence += 1
        artifact = self.challenger.to_artifact()
        record = ModelVersionRecord(
            version=version_id(self.feature_set, self.spec, self.sequence),
            lineage=self.lineage, sequence=self.sequence, parent=parent, status=status,
            created_at=now_ms, status_changed_at=now_ms, feature_set=self.feature_set,
            model=self.spec, model_config_hash=self.spec.config_hash,
            river_version=RIVER_VERSION,
            training=TrainingRange(topic=self.training_topic,
                                   from_offset=self.first_offset if self.sequence else None,
                                   to_offset=self.last_offset if self.sequence else None),
            examples_learned=self.examples_learned, artifact_sha256=artifact_sha256(artifact),
            artifact=artifact)  # type: ignore[arg-type]
        self._versions[record.version] = record
        self.latest = record.version
        return record

    def _promote(self, record: ModelVersionRecord, now_ms: int, by: str, reason: str,
                 evaluation: Evaluation, *, override: bool,
                 request_id: str | None = None) -> list[Output]:
        previous = self.champion
        out: list[Output] = []
        if previous is not None:
            out.append(self._set_status(previous, VersionStatus.RETIRED, now_ms))
        out.append(self._set_status(record.version, VersionStatus.CHAMPION, now_ms))
        self._set_champion(record.version)
        out.append(self._audit(now_ms, record.version, Decision.PROMOTE, by, reason,
                               previous=previous, evaluation=evaluation, override=override,
                               request_id=request_id))
        return out

    def _set_champion(self, version: str) -> None:
        self.champion = version
        if version in self.champion_history:
            self.champion_history.remove(version)
        self.champion_history.append(version)

    def _set_status(self, version: str, status: VersionStatus,
                    now_ms: int) -> ModelVersionRecord:
        record = self.version(version).model_copy(
            update={"status": status, "status_changed_at": now_ms})
        self._versions[version] = record
        return record

    def _audit(self, now_ms: int, version: str, decision: Decision, by: str, reason: str,
               *, previous: str | None, evaluation: Evaluation | None = None,
               override: bool = False, request_id: str | None = None) -> AuditRecord:
        self.audit_sequence += 1
        return AuditRecord(
            audit_id=f"{self.lineage}:{self.audit_sequence}", time=now_ms, version=version,
            decision=decision, by=by, override=override, reason=reason,
            previous_champion=previous, champion=self.champion,
            gates=evaluation.gates if evaluation else [], evaluation=evaluation,
            request_id=request_id)

    def _frozen_model(self, record: ModelVersionRecord) -> LogisticModel:
        model = self._frozen.get(record.version)
        if model is None:
            model = self._frozen[record.version] = LogisticModel.from_artifact(record.artifact)
        return model

    def _scores(self, record: ModelVersionRecord,
                use_served: bool) -> tuple[list[float], list[int], int]:
        """The version's honest score on each window example (see module doc)."""
        to = record.training.to_offset
        in_lineage = record.lineage == self.lineage
        threshold = record.model.threshold
        scores: list[float] = []
        decisions: list[int] = []
        served = 0
        for seen in self._window:
            if use_served and seen.served_version == record.version:
                scores.append(seen.served_score)
                decisions.append(seen.served_decision)
                served += 1
                continue
            if in_lineage and to is not None and seen.offset <= to:
                p = seen.prequential
            else:
                p = self._frozen_model(record).predict_x(seen.x)
            scores.append(p)
            decisions.append(int(p >= threshold))
        return scores, decisions, served

    def _evaluate(self, candidate: ModelVersionRecord) -> Evaluation:
        champion = self._versions.get(self.champion or "")
        cand_scores, cand_decisions, _ = self._scores(candidate, use_served=False)
        if champion is None:  # only before start(): nothing to compare with
            champ_scores, champ_decisions, served = cand_scores, cand_decisions, 0
        else:
            champ_scores, champ_decisions, served = self._scores(champion, use_served=True)
        window = self._window
        return compare(
            candidate=candidate.version, champion=self.champion,
            candidate_scores=cand_scores, candidate_decisions=cand_decisions,
            champion_scores=champ_scores, champion_decisions=champ_decisions,
            labels=[s.label for s in window], groups=[s.groups for s in window],
            attributes=self.attributes, config=self.promotion,
            offsets=(window[0].offset, window[-1].offset) if window else (None, None),
            champion_scores_served=served)

    def _evict(self) -> None:
        """Keep the champion, the last ``retain_versions`` champions and the last
        ``retain_versions`` other versions (older ones stay on model.versions)."""
        r = self.promotion.retain_versions
        self.champion_history = self.champion_history[-r:]
        keep = set(self.champion_history) | {self.champion}
        others = [v for v in self.versions() if v.version not in keep]
        for record in others[:max(0, len(others) - r)]:
            del self._versions[record.version]
        for version in list(self._frozen):
            if version != self.champion:
                del self._frozen[version]

    # ---------------------------------------------------------------- snapshot

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-able data (see :meth:`restore`)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "lineage": self.lineage,
            "challenger": self.challenger.to_artifact(),
            "examples_learned": self.examples_learned,
            "examples_skipped": self.examples_skipped,
            "examples_repeated": self.examples_repeated,
            "recent_event_ids": self._recent.to_data(),
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "sequence": self.sequence,
            "audit_sequence": self.audit_sequence,
            "champion": self.champion,
            "latest": self.latest,
            "champion_history": list(self.champion_history),
            "versions": [r.model_dump(mode="json") for r in self.versions()],
            "window": _window_to_data(self._window),
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any], *, spec: ModelSpec,
                promotion: PromotionConfig, feature_set: str,
                sensitive_attributes: Mapping[str, Sequence[str]] | None = None,
                training_topic: str | None = None) -> LearnerCore:
        """A learner that continues exactly where the snapshot's learner stopped.

        GovernanceError when the snapshot belongs to another lineage (another feature set
        or model config): that learner's versions cannot be continued by this config.
        """
        core = cls(spec=spec, promotion=promotion, feature_set=feature_set,
                   sensitive_attributes=sensitive_attributes, training_topic=training_topic)
        if data.get("format") != SNAPSHOT_FORMAT:
            raise GovernanceError(f"not a learner snapshot: format {data.get('format')!r}")
        if data.get("lineage") != core.lineage:
            raise GovernanceError(f"snapshot of lineage {data.get('lineage')!r}, this config "
                                  f"is lineage {core.lineage!r}")
        try:
            core.challenger = LogisticModel.from_artifact(data["challenger"])
            for key in ("examples_learned", "examples_skipped", "first_offset",
                        "last_offset", "sequence", "audit_sequence", "champion", "latest"):
                setattr(core, key, data[key])
            core.champion_history = list(data["champion_history"])
            core._versions = {r["version"]: ModelVersionRecord.model_validate(r)
                              for r in data["versions"]}
            core._window.extend(_window_from_data(data["window"]))
            core.examples_repeated = int(data.get("examples_repeated", 0))
            core._recent = RecentIds.from_data(data.get("recent_event_ids", []))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise GovernanceError(f"learner snapshot is incomplete: {exc!r}") from None
        return core


def _require_person(by: str, reason: str) -> None:
    if not by.strip() or by.strip() == POLICY:
        raise GovernanceError(f"--by must name a person (not empty, not {POLICY!r})")
    if not reason.strip():
        raise GovernanceError("--reason must say why")
