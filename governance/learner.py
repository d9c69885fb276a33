"""The learner's core: a deterministic state machine over the ``training`` log.

The shell feeds it every training record in offset order and publishes what it returns
(:class:`~governance.records.ModelVersionRecord` to ``model.versions``,
:class:`~governance.records.AuditRecord` to ``model.audit``). It has no clock and no I/O:
times come in as arguments (pass the training record's timestamp as ``now_ms`` to
:meth:`LearnerCore.learn` and a replay reproduces the records exactly), and so does what
only the shell can know: the environment (package, Python, River and dependency
versions) and the training log's end offset when a lineage begins.

Lifecycle
---------
- :meth:`LearnerCore.start` publishes version 0, the untrained model, as the first
  champion (the bootstrap rule), or keeps a champion of another lineage serving
  (``incumbent``, after a config change). ``catch_up_to``: the training log's end offset
  when the lineage begins; no version of it is cut before it has learned that far, so a
  new lineage cannot be promoted while it is still catching up on old history.
- One challenger learns every example, exactly once, in offset order.
- Every ``examples_per_version`` examples the challenger is cut and published with
  status ``shadow``: every scorer scores each event with it beside the champion, without
  serving it, and the event's training example carries that score. At most
  ``max_shadows`` are in shadow at once: a cut that is due while they are all undecided
  *waits* (the challenger keeps learning and is cut when a verdict frees a slot). Waiting,
  not retiring the oldest to a person, because each verdict's error rate holds only for a
  candidate judged to its end, and because fewer cuts are fewer chances for an unfair
  candidate to pass: the bound across successive cuts is on the number judged.
- A candidate is judged only on its shadow evidence (:mod:`governance.shadow`): examples
  whose ``shadow_scores`` hold its score (events it scored at event time after its cut),
  paired with the current champion's event-time score of the same event. After each new
  paired example :func:`governance.gates.look_at` says whether a look is due; at a look
  :func:`governance.gates.judge` gives pass, fail or hold (``final``: the last look).
  ``gated``: pass promotes, fail holds the candidate (status ``held``), hold keeps it in
  shadow collecting, a final hold is held. ``manual``: the gates are recorded at every
  look; at the verdict the candidate awaits a person (status ``candidate``).
  Nothing prequential, nothing scored with hindsight, enters a gate.
- :meth:`LearnerCore.promote` (a person; refused unless the version's last look passed
  against the current champion, or ``override``) and :meth:`LearnerCore.rollback` (to a
  past champion) change which version serves, never what the challenger learns.
- The promotion policy (:class:`~governance.config.PromotionPolicy`: every gate setting,
  sensitive attributes, intersections, favourable outcome, the drift watch's settings) is
  on every record with its hash. A learner restored under a different policy records
  ``policy_changed`` before anything else it decides.
- Drift. Every cut stores a reference (``drift_reference``): a sketch of the last
  ``drift.reference.examples`` examples learned, per watched feature, the scores and
  decisions the frozen version gives them, per group (a cut from fewer than
  ``min_examples`` keeps its parent's). A person may pin a version's reference as the
  baseline (:meth:`LearnerCore.pin_baseline`), carried on every version record after
  (``drift_baseline``). Every example learned goes to a :class:`monitors.DriftWatch`
  built on the champion's reference (and the baseline), the score and decision given by
  the champion itself. With ``on_drift: pause`` a window that flags any statistic
  (family-wise rate ``drift.family_false_alarm_rate``) pauses automatic promotion (audit
  ``pause``): a candidate whose gates pass awaits a person (``await_review``). It resumes
  after ``drift.resume_after`` clean windows (``resume`` by policy) or when a person says
  so (:meth:`LearnerCore.resume`). The watch's windows are in the snapshot, so a
  restarted learner and a replay of the log make the same pauses.

>>> from governance.records import TrainingExample
>>> core = LearnerCore(spec=ModelSpec(), promotion=PromotionConfig(examples_per_version=2),
...                    feature_set="fs")
>>> [r.status.value for r in core.start(now_ms=0) if isinstance(r, ModelVersionRecord)]
['champion']
>>> ex = lambda x, y: TrainingExample(event_id=f"e{x}", entity_id="u", features={"x": x},
...     label=y, score=0.5, decision=1, model_version=core.champion, feature_set="fs",
...     event_ts=0, label_ts=0)
>>> core.learn(0, ex(1.0, 1), now_ms=1)
[]
>>> (v1,) = core.learn(1, ex(-1.0, 0), now_ms=2)
>>> v1.version, v1.status.value, v1.training.to_offset, v1.parent
('fs-316b4076-v1', 'shadow', 1, 'fs-316b4076-v0')
>>> core.shadows()
['fs-316b4076-v1']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from governance import gates
from governance.artifact import RIVER_VERSION, LogisticModel, artifact_sha256
from governance.config import (
    ModelSpec,
    PromotionConfig,
    PromotionPolicy,
    changed_settings,
    sha256_hex,
)
from governance.evaluation import bounded_group, impact, performance
from governance.lineage import (
    DUPLICATE_WINDOW,
    RecentIds,
    learnable,
    lineage_of,
    version_id,
)
from governance.records import (
    POLICY,
    AuditRecord,
    Decision,
    DriftFinding,
    DriftFlag,
    Environment,
    Evaluation,
    GateOutcome,
    GroupQualityStats,
    ImpactStats,
    Look,
    ModelVersionRecord,
    PerformanceStats,
    TrainingExample,
    TrainingRange,
    VersionStatus,
)
from governance.shadow import ShadowEvidence
from governance.sizes import bounded_gates, bounded_quality
from monitors.config import DriftConfig
from monitors.drift_watch import DriftState, DriftWatch, Flag, reference_from_examples
from monitors.sketch import DriftReference, reference_at_cut

__all__ = ["DUPLICATE_WINDOW", "GovernanceError", "LearnerCore", "Output", "RecentIds",
           "learnable", "lineage_of", "version_id"]

Output = ModelVersionRecord | AuditRecord
SNAPSHOT_FORMAT = "streambed.learner/2"
#: Snapshots of the prequential learner (before shadow judging): still restored.
LEGACY_SNAPSHOT_FORMAT = "streambed.learner/1"


class GovernanceError(ValueError):
    """A request the lifecycle cannot honour (unknown version, offset out of order, ...)."""


class LearnerCore:
    """Learns the challenger, cuts shadows, judges them, applies the policy; see module doc."""

    def __init__(self, *, spec: ModelSpec, promotion: PromotionConfig, feature_set: str,
                 sensitive_attributes: Mapping[str, Sequence[str]] | None = None,
                 training_topic: str | None = None,
                 intersections: Sequence[Sequence[str]] = (),
                 favourable_outcome: str = "below_threshold",
                 environment: Environment | None = None,
                 drift: DriftConfig | None = None) -> None:
        self.spec = spec
        self.feature_set = feature_set
        self.training_topic = training_topic
        self.environment = environment
        self.policy = PromotionPolicy(
            promotion=promotion,
            sensitive_attributes={a: list(g) for a, g in (sensitive_attributes or {}).items()},
            intersections=[list(m) for m in intersections],
            favourable_outcome=favourable_outcome,  # type: ignore[arg-type]
            drift=drift or DriftConfig())
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
        #: examples_learned when the last version was cut (the cadence counts from here).
        self.cut_at = 0
        #: The training log's end offset when the lineage began (no cut before it).
        self.catch_up_to: int | None = None
        #: The policy the last record carried (None: nothing recorded yet).
        self.policy_on_record: dict[str, Any] | None = None
        self._versions: dict[str, ModelVersionRecord] = {}
        self._shadows: dict[str, ShadowEvidence] = {}
        self._served: deque[tuple[float, int, int, dict[str, str]]] = deque(
            maxlen=promotion.evaluation_window)
        self._recollected: tuple[int, RecentIds] | None = None
        #: The last examples learned, (offset, features, groups), for the next cut's drift
        #: reference; offsets still to read back after a restore (:meth:`recollect`).
        self._reference_rows: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque(
            maxlen=self.policy.drift.reference.examples)
        self._reference_to_read: set[int] = set()
        #: The baseline a person pinned: (version, its drift reference as on its record).
        self.baseline: tuple[str, dict[str, Any]] | None = None
        #: The drift watch over the examples, for (champion, baseline version); the pause.
        self._watch: DriftWatch | None = None
        self._watch_key: tuple[str | None, str | None] | None = None
        self._drift_state: DriftState | None = None
        self._champion_model: tuple[str, LogisticModel] | None = None

    @property
    def promotion(self) -> PromotionConfig:
        return self.policy.promotion

    @property
    def attributes(self) -> dict[str, list[str]]:
        return self.policy.attributes()

    # ---------------------------------------------------------------- queries

    @property
    def next_offset(self) -> int:
        """The training offset to seek to (0 when nothing was read)."""
        return 0 if self.last_offset is None else self.last_offset + 1

    @property
    def caught_up(self) -> bool:
        """Whether the lineage has learned up to the log's end offset at its start."""
        return self.catch_up_to is None or self.next_offset >= self.catch_up_to

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

    def shadows(self) -> list[str]:
        """The versions in shadow now, oldest cut first."""
        return list(self._shadows)

    def evidence(self, version: str) -> ShadowEvidence:
        """A shadow's evidence so far; GovernanceError if it is not in shadow."""
        try:
            return self._shadows[version]
        except KeyError:
            raise GovernanceError(f"{version} is not in shadow") from None

    def served(self) -> tuple[PerformanceStats, dict[str, ImpactStats]]:
        """How the serving champions did on the last ``evaluation_window`` examples: the
        scores and decisions they gave at scoring time (what the learner's /metrics export)."""
        window = list(self._served)
        labels = [s[2] for s in window]
        return (performance([s[0] for s in window], labels),
                impact([s[1] for s in window], labels, [s[3] for s in window],
                       self.attributes, self.promotion.min_group_examples))

    # ---------------------------------------------------------------- lifecycle

    def start(self, now_ms: int, incumbent: ModelVersionRecord | None = None, *,
              catch_up_to: int | None = None,
              policy_on_record: Mapping[str, Any] | None = None,
              stale_shadows: Sequence[ModelVersionRecord] = (),
              drift_paused: DriftFinding | None = None) -> list[Output]:
        """Begin the lineage; [] if already started.

        Without ``incumbent``: publish the untrained version 0 as the first champion (the
        bootstrap rule). With the champion now serving from another lineage (the feature
        set or model config changed): keep it serving, record that it was adopted, and
        judge this lineage's first version against it; version 0 is then not published.
        ``catch_up_to``: the training log's end offset now (recorded; no version is cut
        before the lineage has learned up to it). ``policy_on_record``: the policy of the
        last audit record (another lineage's); a different one is recorded as
        ``policy_changed`` first. ``stale_shadows``: versions of another lineage still in
        shadow, which can no longer be judged here: held, each with its audit record.
        ``drift_paused``: the finding of the last drift ``pause`` on the audit log when no
        ``resume`` followed it (another lineage's, its champion still serving): automatic
        promotion stays paused, said on the bootstrap record.
        """
        if self.sequence >= 0:
            return []
        self.catch_up_to = catch_up_to
        note = ""
        if drift_paused is not None and drift_paused.drifted:
            self._drift_state = DriftState(
                True, drift_paused.drifted,
                tuple(Flag(f.statistic, f.value, f.threshold, f.p_value, f.events)
                      for f in drift_paused.flags), 0, 0,
                drift_paused.family_false_alarm_rate, drift_paused.level,
                drift_paused.statistics)
            note = (f"; automatic promotion stays paused by drift ({drift_paused.drifted}), "
                    f"as the audit log left it")
        out: list[Output] = []
        if policy_on_record is not None:
            self.policy_on_record = dict(policy_on_record)
            out += self.record_policy(now_ms)
        self.policy_on_record = self.policy.on_record()
        if incumbent is None:
            self.sequence = -1
            record = self._cut_record(now_ms, VersionStatus.CHAMPION)
            self._set_champion(record.version)
            out += [record, self._audit(
                now_ms, record.version, Decision.BOOTSTRAP, POLICY,
                "version 0 is the untrained model: it scores every example 0.5 and treats "
                "every group alike" + self._catch_up_note() + note, previous=None,
                catch_up_to=catch_up_to, drift=drift_paused if note else None)]
        else:
            if incumbent.lineage == self.lineage:
                raise GovernanceError(f"{incumbent.version} is of this lineage: restore the "
                                      f"learner's snapshot instead of starting it again")
            if incumbent.status is not VersionStatus.CHAMPION:
                raise GovernanceError(f"{incumbent.version} is {incumbent.status.value}, "
                                      f"not the champion")
            self.sequence = 0
            self._versions[incumbent.version] = incumbent
            self._set_champion(incumbent.version)
            out.append(self._audit(
                now_ms, incumbent.version, Decision.BOOTSTRAP, POLICY,
                f"lineage {self.lineage} begins; the serving champion {incumbent.version} "
                f"stays and judges its first version" + self._catch_up_note() + note,
                previous=incumbent.version, catch_up_to=catch_up_to,
                drift=drift_paused if note else None))
        for stale in stale_shadows:
            if stale.lineage == self.lineage or stale.status is not VersionStatus.SHADOW:
                continue
            self._versions[stale.version] = stale
            out += [self._set_status(stale.version, VersionStatus.HELD, now_ms),
                    self._audit(now_ms, stale.version, Decision.HOLD, POLICY,
                                f"its lineage {stale.lineage} ended before its verdict "
                                f"(lineage {self.lineage} began): no longer shadowed",
                                previous=self.champion, evaluation=stale.evaluation)]
        return out

    def _catch_up_note(self) -> str:
        if not self.catch_up_to:
            return ""
        return (f"; no version is cut before it has learned the training log up to offset "
                f"{self.catch_up_to} (its end when the lineage began)")

    def adopt_policy(self, policy: PromotionPolicy) -> None:
        """Decide under ``policy`` from now on; the change is recorded (``policy_changed``)
        before the next decision. The evidence of shadows is kept (it is about events,
        not about the policy) and their looks continue counting: a loosened policy is
        not a fresh set of looks."""
        self.policy = policy
        self._served = deque(self._served, maxlen=policy.promotion.evaluation_window)
        self._reference_rows = deque(self._reference_rows,
                                     maxlen=policy.drift.reference.examples)
        self._watch_key = None  # rebuilt under the new settings, the pause carried

    def learn(self, offset: int, example: TrainingExample, now_ms: int) -> list[Output]:
        """Learn one training example; collect it as shadow evidence, judge a shadow when a
        look is due, cut a version every N when a shadow slot is free."""
        if self.last_offset is not None and offset <= self.last_offset:
            raise GovernanceError(f"offset {offset} already learned (last {self.last_offset}); "
                                  f"seek to {self.next_offset}")
        out = self.start(now_ms)
        out += self.record_policy(now_ms)
        self.last_offset = offset
        if not learnable(example, self.feature_set):
            self.examples_skipped += 1
            return out
        if not self._recent.check_and_add(example.event_id):
            self.examples_repeated += 1
            return out
        if self.first_offset is None:
            self.first_offset = offset
        self.challenger.learn(example.features, example.label)
        self.examples_learned += 1
        groups = {a: bounded_group(example.groups.get(a), g)
                  for a, g in self.attributes.items()}
        self._served.append((example.score, example.decision, example.label, groups))
        self._reference_rows.append((offset, dict(example.features), dict(example.groups)))
        out += self._watch_drift(example, now_ms)
        out += self._collect(offset, example, now_ms)
        if self._cut_due():
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
        """A person promotes a version, on the gates of its last look.

        Refused (an audit record, no change) unless that look passed against the current
        champion, or ``override`` (recorded as such). A person's promotion is not a look:
        it adds no test, so it leaves the policy's error rate as stated. ``request_id`` is
        copied into the audit record, so a CLI that sent the request can find its answer.
        """
        _require_person(by, reason)
        record = self.version(version)
        if version == self.champion:
            raise GovernanceError(f"{version} is already the champion")
        out = self.record_policy(now_ms)
        evaluation = record.evaluation
        why_not = self._not_passed(evaluation)
        if why_not and not override:
            return [*out, self._audit(now_ms, version, Decision.REFUSE, by,
                                      f"{reason} (refused: {why_not})",
                                      previous=self.champion, evaluation=evaluation,
                                      request_id=request_id)]
        self._shadows.pop(version, None)
        return out + self._promote(record, now_ms, by, reason, evaluation,
                                   override=override and bool(why_not),
                                   request_id=request_id)

    def _not_passed(self, evaluation: Evaluation | None) -> str:
        """Why a version's recorded gates do not allow a promotion ('' when they do)."""
        if evaluation is None or evaluation.look is None:
            return "no look at its shadow evidence yet"
        if evaluation.champion != self.champion:
            return (f"its gates were judged against {evaluation.champion}, the champion is "
                    f"now {self.champion}")
        if evaluation.outcome is not GateOutcome.PASS:
            return f"gates did not pass: {evaluation.not_passed()}"
        return ""

    def rollback(self, to_version: str | None = None, *, by: str, reason: str,
                 now_ms: int, request_id: str | None = None) -> list[Output]:
        """A person puts a past champion back (default: the one before the current).

        No gates: a past champion has no shadow evidence on today's events, and a rollback
        is a person's answer to what they saw (recorded with their name and reason)."""
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
        out = self.record_policy(now_ms)
        previous = self.champion
        out.append(self._set_status(previous, VersionStatus.ROLLED_BACK, now_ms))
        out.append(self._set_status(target.version, VersionStatus.CHAMPION, now_ms))
        self._set_champion(target.version)
        out.append(self._audit(now_ms, target.version, Decision.ROLLBACK, by, reason,
                               previous=previous, request_id=request_id))
        return out

    @property
    def paused(self) -> bool:
        """Whether automatic promotion is paused by drift now (``on_drift: pause``)."""
        return (self.promotion.on_drift == "pause" and self._drift_state is not None
                and self._drift_state.paused)

    @property
    def drift_state(self) -> DriftState | None:
        """The drift watch's last state (None before any watch)."""
        return self._drift_state

    def resume(self, *, by: str, reason: str, now_ms: int,
               request_id: str | None = None) -> list[Output]:
        """A person lifts a drift pause: automatic promotion resumes at once (until the
        next window that flags drift). GovernanceError when promotion is not paused."""
        _require_person(by, reason)
        if not self.paused or self._drift_state is None:
            raise GovernanceError("automatic promotion is not paused: nothing to resume")
        out = self.record_policy(now_ms)
        before = self._drift_state
        if self._watch is not None and self._watch_key == self._key():
            self._drift_state = self._watch.resume()
        else:
            self._drift_state = DriftState(False, None, (), before.windows, 0,
                                           before.family_false_alarm_rate, before.level,
                                           before.statistics)
        out.append(self._audit(
            now_ms, self.champion or self.lineage, Decision.RESUME, by,
            f"{reason} (automatic promotion was paused: {before.reason})",
            previous=self.champion, request_id=request_id, drift=self._finding(before)))
        return out

    def pin_baseline(self, version: str | None = None, *, by: str, reason: str,
                     now_ms: int, request_id: str | None = None) -> list[Output]:
        """A person pins a version's drift reference (default: the champion's) as the
        baseline: every version record from now on carries it (``drift_baseline``), the
        scorers and the drift watch compare with it beside the champion's own reference,
        so slow drift is not absorbed by successive promotions."""
        _require_person(by, reason)
        record = self.version(version or self.champion or "")
        if record.drift_reference is None:
            raise GovernanceError(f"{record.version} has no drift reference to pin (cut "
                                  f"from no examples, or before references were stored)")
        out = self.record_policy(now_ms)
        previous = self.baseline[0] if self.baseline else None
        self.baseline = (record.version, record.drift_reference)
        if self.champion is not None:
            out.append(self._stamp(self.version(self.champion)))
        was = f"; it replaces {previous}'s" if previous else ""
        out.append(self._audit(
            now_ms, record.version, Decision.PIN_BASELINE, by,
            f"{reason} (the drift reference of {record.version}, "
            f"{record.drift_reference.get('examples')} examples, is the baseline{was})",
            previous=self.champion, request_id=request_id,
            drift=self._finding(self._drift_state)))
        return out

    # ---------------------------------------------------------------- drift

    def _key(self) -> tuple[str | None, str | None]:
        return self.champion, self.baseline[0] if self.baseline else None

    def _current_watch(self) -> DriftWatch | None:
        """The watch over the champion's reference (and the baseline), built anew when
        either changes; a pause carries over."""
        if self._watch_key == self._key():
            return self._watch
        self._watch_key = self._key()
        self._watch = None
        try:
            champion = self.version(self.champion or "")
        except GovernanceError:
            return None
        if champion.drift_reference is None or champion.feature_set != self.feature_set:
            return None
        try:
            reference = DriftReference.from_json(champion.drift_reference)
            baseline = (None if self.baseline is None
                        else DriftReference.from_json(self.baseline[1]))
        except (ValueError, KeyError, TypeError):
            return None
        try:
            self._watch = DriftWatch(self.policy.monitors(), reference, baseline=baseline,
                                     window_examples=self.policy.drift.watch_examples)
        except ValueError:  # references the monitors cannot bin: nothing is watched
            return None
        if self._drift_state is not None and self._drift_state.paused:
            self._drift_state = self._watch.carry(self._drift_state)
        return self._watch

    def _champion_scorer(self) -> LogisticModel:
        champion = self.champion or ""
        if self._champion_model is None or self._champion_model[0] != champion:
            self._champion_model = (champion, LogisticModel.from_artifact(
                self.version(champion).artifact))
        return self._champion_model[1]

    def _watch_drift(self, example: TrainingExample, now_ms: int) -> list[Output]:
        """Feed one learned example to the drift watch (scored and decided by the
        champion itself); pause or resume automatic promotion when a window says so."""
        if self.promotion.on_drift != "pause" or self.promotion.mode != "gated":
            return []  # nothing is promoted automatically in manual mode: nothing to pause
        watch = self._current_watch()
        if watch is None:
            return []
        score, decision = self._champion_scorer().score(example.features)
        was = self.paused
        state = watch.observe(example.features, score, decision, example.groups)
        if state is None:
            return []
        self._drift_state = state
        if state.paused and not was:
            return [self._audit(
                now_ms, self.champion or self.lineage, Decision.PAUSE, POLICY,
                f"drift in the training examples against {self._against()}: "
                f"{state.reason}; automatic promotion is paused (candidates whose gates "
                f"pass await a person) until {self.policy.drift.resume_after} clean windows "
                f"in a row or a person resumes", previous=self.champion,
                drift=self._finding(state))]
        if was and not state.paused:
            return [self._audit(
                now_ms, self.champion or self.lineage, Decision.RESUME, POLICY,
                f"{state.clean_windows} clean windows in a row against {self._against()}: "
                f"automatic promotion resumes", previous=self.champion,
                drift=self._finding(state))]
        return []

    def _against(self) -> str:
        base = f" and the baseline of {self.baseline[0]}" if self.baseline else ""
        return f"the reference of {self.champion}{base}"

    def _finding(self, state: DriftState | None) -> DriftFinding:
        drift = self.policy.drift
        return DriftFinding(
            reference_version=self.champion,
            baseline_version=self.baseline[0] if self.baseline else None,
            window_examples=drift.watch_examples,
            windows=state.windows if state else 0,
            clean_windows=state.clean_windows if state else 0,
            resume_after=drift.resume_after,
            family_false_alarm_rate=drift.family_false_alarm_rate,
            level=state.level if state else 0.0,
            statistics=state.statistics if state else 0,
            min_effect_psi=drift.min_effect_psi,
            flags=[DriftFlag(statistic=f.statistic, value=f.value, threshold=f.threshold,
                             p_value=f.p_value, events=f.events)
                   for f in (state.flags if state else ())][:16],
            drifted=state.reason if state else None)

    def _reference(self, parent: str | None) -> dict[str, Any] | None:
        """The drift reference of the version being cut (the challenger now): its last
        examples, scored and decided by itself; its parent's if it learned too few."""
        inherited = None
        if parent is not None and parent in self._versions:
            inherited = self._versions[parent].drift_reference
        rows = list(self._reference_rows)
        if not rows:
            return inherited
        features = [r[1] for r in rows]
        scores = self.challenger.score_batch(features)
        decisions = [int(p >= self.spec.threshold) for p in scores]
        own = reference_from_examples(self.policy.monitors(), features, scores, decisions,
                                      [r[2] for r in rows])
        if inherited is None:
            return own.to_json()
        try:
            parents = DriftReference.from_json(inherited)
        except (ValueError, KeyError, TypeError):
            return own.to_json()
        chosen = reference_at_cut(own, parents, self.policy.drift.reference.min_examples)
        return inherited if chosen is parents else own.to_json()

    # ---------------------------------------------------------------- internals

    def record_policy(self, now_ms: int) -> list[Output]:
        """``policy_changed`` when the policy differs from the one on record (once; [] when
        it does not). Every other call that decides records it first; the shell calls it
        right after a restore, so the change is on record at once."""
        now = self.policy.on_record()
        before = self.policy_on_record
        if before is None or before == now:
            return []
        self.policy_on_record = now
        changed = changed_settings(before, now)
        named = ", ".join(changed[:12]) + (f" (+{len(changed) - 12} more)"
                                           if len(changed) > 12 else "")
        was = sha256_hex(before)       # as that record's policy_sha256 has it
        return [self._audit(now_ms, self.champion or self.latest or self.lineage,
                            Decision.POLICY_CHANGED, POLICY,
                            f"promotion policy changed: {named} (was sha256 {was}); every "
                            f"decision from here is made under the policy on this record",
                            previous=self.champion)]

    def _collect(self, offset: int, example: TrainingExample, now_ms: int) -> list[Output]:
        """Add the example to the evidence of every shadow that scored it; judge a shadow
        whose look is due against the current champion."""
        out: list[Output] = []
        for candidate in self._add_evidence(offset, example, self._shadows):
            evidence = self._shadows[candidate]
            look = self._due_look(evidence.paired_count(self.champion or ""),
                                  evidence.looks_done)
            if look is not None:
                out += self._judge(candidate, look, now_ms)
        return out

    def _add_evidence(self, offset: int, example: TrainingExample,
                      shadows: Mapping[str, ShadowEvidence]) -> list[str]:
        """Add a row to each of ``shadows`` that scored the example; return those whose
        row the current champion also scored (a new paired example)."""
        if not shadows or not example.shadow_scores:
            return []
        groups = example.groups
        paired = []
        for candidate, evidence in shadows.items():
            score = example.shadow_scores.get(candidate)
            cut = self._versions[candidate].training.to_offset
            if score is None or (cut is not None and offset <= cut):
                continue  # not scored in shadow, or (impossibly) an example it learned
            others = {v: s for v, s in example.shadow_scores.items() if v != candidate}
            others[example.model_version] = example.score
            evidence.add(offset, example.label, score, others, groups)
            if self.champion in others:
                paired.append(candidate)
        return paired

    def _due_look(self, paired: int, looks_done: int) -> int | None:
        """The look due at ``paired`` examples (:func:`governance.gates.look_at`); when the
        champion changed mid-shadow the paired count can jump past a look's size (the new
        champion had scored the same events in shadow), so the latest look passed counts
        too. Never a look already made: a new comparator is not a fresh set of looks."""
        look = gates.look_at(paired, self.promotion)
        if look is None:
            passed = sum(1 for n in self.promotion.look_sizes() if n <= paired)
            look = passed or None
        return look if look is not None and look > looks_done else None

    def recollect_from(self) -> int | None:
        """Where a restored learner must re-read the training log for its shadows' rows
        (None: nothing to read). See :meth:`recollect`."""
        starts = [e.from_offset for e in self._shadows.values()
                  if e.expected_rows and not len(e) and e.from_offset is not None]
        if self._reference_to_read:
            starts.append(min(self._reference_to_read))
        return min(starts) if starts else None

    def recollect(self, offset: int, example: TrainingExample | None) -> None:
        """Read back one training record below :attr:`next_offset` into the evidence of the
        restored shadows (a snapshot keeps their looks, not their rows). Judges nothing:
        every look up to the snapshot is on record. Feed offsets in order from
        :meth:`recollect_from`; afterwards :meth:`evidence_complete` must be true."""
        if example is None or offset >= self.next_offset:
            return
        if offset in self._reference_to_read:
            # The examples the next cut's drift reference sketches (learned: no check).
            self._reference_to_read.discard(offset)
            self._reference_rows.append((offset, dict(example.features),
                                         dict(example.groups)))
        waiting = {c: e for c, e in self._shadows.items()
                   if e.from_offset is not None and offset >= e.from_offset
                   and len(e) < e.expected_rows}
        if not waiting or not learnable(example, self.feature_set):
            return
        if self._recollected is None or self._recollected[0] >= offset:
            self._recollected = (offset, RecentIds())
        self._recollected = (offset, self._recollected[1])
        if self._recollected[1].check_and_add(example.event_id):
            self._add_evidence(offset, example, waiting)

    def evidence_complete(self) -> bool:
        """Whether every restored shadow has its rows back, and the examples the next
        drift reference sketches."""
        return (not self._reference_to_read
                and all(len(e) >= e.expected_rows for e in self._shadows.values()))

    def _judge(self, candidate: str, look: int, now_ms: int) -> list[Output]:
        evidence = self._shadows[candidate]
        champion = self.version(self.champion or "")
        record = self.version(candidate)
        paired = evidence.paired(champion.version, self.policy,
                                 champion_threshold=champion.model.threshold,
                                 candidate_threshold=record.model.threshold)
        judgement = gates.judge(paired, self.promotion, look=look)
        verdicts = bounded_gates(judgement.gates)
        first, last = evidence.offsets_paired(champion.version)
        this = Look(look=look, examples=len(paired), to_offset=last,
                    outcome=judgement.outcome,
                    failing=_failing(verdicts)[:8])
        evidence.looks.append(this.model_dump(mode="json"))
        evaluation = Evaluation(
            candidate=candidate, champion=champion.version, examples=len(paired),
            from_offset=first, to_offset=last, seed=paired.seed, look=look,
            final=judgement.final, looks=[Look.model_validate(x) for x in evidence.looks],
            gates=verdicts, outcome=judgement.outcome,
            group_quality=bounded_quality(_group_quality(judgement)))
        self._versions[candidate] = record = record.model_copy(
            update={"evaluation": evaluation})
        outcome = judgement.outcome
        if outcome is GateOutcome.HOLD and not judgement.final:
            return [self._stamp(record)]           # keep collecting
        del self._shadows[candidate]
        where = f"look {look}{' (final)' if judgement.final else ''} on {len(paired)} examples"
        if self.promotion.mode == "manual":
            status, decision = VersionStatus.CANDIDATE, Decision.AWAIT_REVIEW
            reason = f"manual mode: gates {outcome.value} at {where}; a person decides"
        elif outcome is GateOutcome.PASS and self.paused:
            status, decision = VersionStatus.CANDIDATE, Decision.AWAIT_REVIEW
            state = self._drift_state
            reason = (f"every gate passed at {where}, but automatic promotion is paused by "
                      f"drift ({state.reason if state else 'drift'}): a person decides "
                      f"(streambed model promote, or model resume)")
        elif outcome is GateOutcome.PASS:
            return self._promote(record, now_ms, POLICY, f"every gate passed at {where}",
                                 evaluation, override=False)
        else:
            status, decision = VersionStatus.HELD, Decision.HOLD
            reason = f"gates {outcome.value} at {where}: {evaluation.not_passed()}"
        return [self._set_status(candidate, status, now_ms),
                self._audit(now_ms, candidate, decision, POLICY, reason,
                            previous=self.champion, evaluation=evaluation)]

    def _cut_due(self) -> bool:
        return (self.examples_learned - self.cut_at >= self.promotion.examples_per_version
                and len(self._shadows) < max(1, self.promotion.max_shadows)
                and self.caught_up)

    def _cut(self, now_ms: int) -> list[Output]:
        self.cut_at = self.examples_learned
        if self.promotion.max_shadows == 0:
            record = self._cut_record(now_ms, VersionStatus.CANDIDATE)
            out: list[Output] = [record, self._audit(
                now_ms, record.version, Decision.AWAIT_REVIEW, POLICY,
                "max_shadows is 0: no candidate is scored in shadow, so there is no "
                "evidence to judge; a person decides", previous=self.champion)]
        else:
            record = self._cut_record(now_ms, VersionStatus.SHADOW)
            self._shadows[record.version] = ShadowEvidence(record.version)
            out = [record]
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
            artifact=artifact, drift_reference=self._reference(parent),
            **self._version_fields())  # type: ignore[arg-type]
        self._versions[record.version] = record
        self.latest = record.version
        return record

    def _on_record(self) -> dict[str, Any]:
        """The policy and environment every record carries."""
        return {"policy": self.policy.on_record(), "policy_sha256": self.policy.sha256,
                "environment": self.environment}

    def _version_fields(self) -> dict[str, Any]:
        """What every version record published carries: the policy, the environment and
        the pinned baseline."""
        return {**self._on_record(),
                "drift_baseline": self.baseline[1] if self.baseline else None}

    def _stamp(self, record: ModelVersionRecord) -> ModelVersionRecord:
        record = record.model_copy(update=self._version_fields())
        self._versions[record.version] = record
        return record

    def _promote(self, record: ModelVersionRecord, now_ms: int, by: str, reason: str,
                 evaluation: Evaluation | None, *, override: bool,
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
            update={"status": status, "status_changed_at": now_ms, **self._version_fields()})
        self._versions[version] = record
        return record

    def _audit(self, now_ms: int, version: str, decision: Decision, by: str, reason: str,
               *, previous: str | None, evaluation: Evaluation | None = None,
               override: bool = False, request_id: str | None = None,
               catch_up_to: int | None = None,
               drift: DriftFinding | None = None) -> AuditRecord:
        self.audit_sequence += 1
        return AuditRecord(
            audit_id=f"{self.lineage}:{self.audit_sequence}", time=now_ms, version=version,
            decision=decision, by=by, override=override, reason=reason,
            previous_champion=previous, champion=self.champion,
            gates=evaluation.gates if evaluation else [], evaluation=evaluation,
            request_id=request_id, training_offset=self.next_offset,
            catch_up_to=catch_up_to, drift=drift, **self._on_record())

    def _evict(self) -> None:
        """Keep the champion, the shadows, the last ``retain_versions`` champions and the
        last ``retain_versions`` other versions (older ones stay on model.versions)."""
        r = self.promotion.retain_versions
        self.champion_history = self.champion_history[-r:]
        keep = set(self.champion_history) | {self.champion} | set(self._shadows)
        others = [v for v in self.versions() if v.version not in keep]
        for record in others[:max(0, len(others) - r)]:
            del self._versions[record.version]

    # ---------------------------------------------------------------- snapshot

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-able data (see :meth:`restore`)."""
        references: dict[str, Any] = {}
        versions = []
        for r in self.versions():
            data = r.model_dump(mode="json")
            for field in ("drift_reference", "drift_baseline"):
                if data[field] is not None:
                    data[field] = _reference_key(data[field], references)
            versions.append(data)
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
            "cut_at": self.cut_at,
            "catch_up_to": self.catch_up_to,
            "policy_on_record": self.policy_on_record,
            "versions": versions,
            "shadows": [e.to_data() for e in self._shadows.values()],
            "served": [list(s) for s in self._served],
            # Drift: the reference rows are read back from the log (their offsets, as
            # runs), the references once each (versions name them by SHA-256).
            "references": references,
            "reference_offsets": _runs(sorted(
                [r[0] for r in self._reference_rows] + list(self._reference_to_read))),
            "baseline": None if self.baseline is None else [
                self.baseline[0], _reference_key(self.baseline[1], references)],
            "drift_state": None if self._drift_state is None else self._drift_state.to_dict(),
            "watch": None if self._watch is None else {
                "key": list(self._watch_key or (None, None)), "data": self._watch.to_data()},
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any], *, spec: ModelSpec,
                promotion: PromotionConfig, feature_set: str,
                sensitive_attributes: Mapping[str, Sequence[str]] | None = None,
                training_topic: str | None = None,
                intersections: Sequence[Sequence[str]] = (),
                favourable_outcome: str = "below_threshold",
                environment: Environment | None = None,
                drift: DriftConfig | None = None) -> LearnerCore:
        """A learner that continues exactly where the snapshot's learner stopped, under
        this policy (a different one than the snapshot's is recorded, ``policy_changed``,
        before its next decision).

        GovernanceError when the snapshot belongs to another lineage (another feature set
        or model config): that learner's versions cannot be continued by this config.
        A snapshot of the prequential learner (format 1) is restored without its window:
        it had no shadows, and its next version is cut at the next multiple of N.
        """
        core = cls(spec=spec, promotion=promotion, feature_set=feature_set,
                   sensitive_attributes=sensitive_attributes, training_topic=training_topic,
                   intersections=intersections, favourable_outcome=favourable_outcome,
                   environment=environment, drift=drift)
        if data.get("format") not in (SNAPSHOT_FORMAT, LEGACY_SNAPSHOT_FORMAT):
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
            references = data.get("references", {})

            def version(r: dict[str, Any]) -> ModelVersionRecord:
                r = dict(r)
                for field in ("drift_reference", "drift_baseline"):
                    if isinstance(r.get(field), str):
                        r[field] = references[r[field]]
                return ModelVersionRecord.model_validate(r)

            core._versions = {r["version"]: version(r) for r in data["versions"]}
            core.examples_repeated = int(data.get("examples_repeated", 0))
            core._recent = RecentIds.from_data(data.get("recent_event_ids", []))
            if data["format"] == LEGACY_SNAPSHOT_FORMAT:
                n = promotion.examples_per_version
                core.cut_at = core.examples_learned // n * n
                core.policy_on_record = None
            else:
                core.cut_at = int(data["cut_at"])
                core.catch_up_to = data["catch_up_to"]
                core.policy_on_record = data["policy_on_record"]
                core._shadows = {e["candidate"]: ShadowEvidence.from_data(e)
                                 for e in data["shadows"]}
                core._served.extend((float(s), int(d), int(y), dict(g))
                                    for s, d, y, g in data["served"])
                core._restore_drift(data, references)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise GovernanceError(f"learner snapshot is incomplete: {exc!r}") from None
        return core

    def _restore_drift(self, data: Mapping[str, Any], references: Mapping[str, Any]) -> None:
        """The drift part of a snapshot (absent in snapshots from before issue 15: no
        baseline, no pause, the watch starts afresh)."""
        self._reference_to_read = {o for a, b in data.get("reference_offsets", [])
                                   for o in range(a, b + 1)}
        baseline = data.get("baseline")
        if baseline is not None:
            self.baseline = (baseline[0], references[baseline[1]])
        state = data.get("drift_state")
        self._drift_state = None if state is None else DriftState.from_dict(state)
        watch = data.get("watch")
        if watch is None or data.get("policy_on_record") != self.policy.on_record():
            # Another policy: the watch starts afresh under it (the pause carried), as
            # adopt_policy makes it start in a replay of the log.
            return
        key = (watch["key"][0], watch["key"][1])
        if key != self._key():
            return
        champion = self.version(self.champion or "")
        if champion.drift_reference is None:
            return
        self._watch = DriftWatch.from_data(
            self.policy.monitors(), DriftReference.from_json(champion.drift_reference),
            watch["data"], baseline=(None if self.baseline is None
                                     else DriftReference.from_json(self.baseline[1])))
        self._watch_key = key


def _reference_key(reference: dict[str, Any], table: dict[str, Any]) -> str:
    """A reference's SHA-256 (canonical JSON), added to ``table``: a snapshot holds each
    distinct reference once, however many versions carry it."""
    key = sha256_hex(reference)
    table.setdefault(key, reference)
    return key


def _runs(offsets: Sequence[int]) -> list[list[int]]:
    """Sorted offsets as runs ``[first, last]`` of consecutive ones.

    >>> _runs([1, 2, 3, 7, 9, 10])
    [[1, 3], [7, 7], [9, 10]]
    """
    out: list[list[int]] = []
    for o in offsets:
        if out and o == out[-1][1] + 1:
            out[-1][1] = o
        else:
            out.append([o, o])
    return out


def _failing(verdicts: Sequence[Any]) -> list[str]:
    return [g.gate + (f"[{g.attribute}]" if g.attribute else "")
            for g in verdicts if g.outcome is not GateOutcome.PASS]


def _require_person(by: str, reason: str) -> None:
    if not by.strip() or by.strip() == POLICY:
        raise GovernanceError(f"--by must name a person (not empty, not {POLICY!r})")
    if not reason.strip():
        raise GovernanceError("--reason must say why")


def _group_quality(judgement: gates.Judgement) -> dict[str, dict[str, GroupQualityStats]]:
    """Both models' per-group AUC and calibration error, side by side (reported only)."""
    out: dict[str, dict[str, GroupQualityStats]] = {}
    for attribute, groups in judgement.candidate_quality.items():
        champion = judgement.champion_quality.get(attribute, {})
        out[attribute] = {
            g: GroupQualityStats(
                examples=q.examples, positives=q.positives, candidate_roc_auc=q.roc_auc,
                champion_roc_auc=champion[g].roc_auc if g in champion else None,
                candidate_calibration_error=q.calibration_error,
                champion_calibration_error=(champion[g].calibration_error
                                            if g in champion else None))
            for g, q in groups.items()}
    return out
