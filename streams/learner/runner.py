"""The learner's loop: training log in, versions and decisions out, exactly once.

One learner is active: the consumer group ``streambed-<name>-learner`` gives the single
partition of ``training`` to one member; a second instance is a standby that gets it when
the first dies (its session times out) and takes over from the last snapshot. On taking
the partition the learner restores its snapshot from the learner-state topic and seeks to
the next offset it covers; it never relies on the group's committed offset.

For each training record, in offset order: :meth:`governance.LearnerCore.learn` (score,
learn, and every N examples cut and judge a version); versions go to ``model.versions``
(keyed by version id), decisions to ``model.audit`` (keyed by audit id). People's
commands (``streambed model promote|rollback|resume|pin-baseline``) arrive on
``model.commands`` and are
answered by an audit record with their request id, or by a :class:`CommandAnswer` on
``model.commands`` when they cannot be carried out. After anything was published, and at
least every ``SNAPSHOT_EVERY_SECONDS``, the learner snapshots its state, then flushes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from pydantic import ValidationError

from governance import (
    AuditRecord,
    CommandAnswer,
    GovernanceError,
    LearnerCore,
    ModelCommand,
    ModelVersionRecord,
    TrainingExample,
    VersionStatus,
)
from governance.records import dumps
from monitors.metrics import Metrics
from monitors.monitoring import Monitoring
from streams.config import Config
from streams.kafka_clients import kafka_python_options
from streams.learner.environment import current_environment
from streams.learner.fetch import fetch_options
from streams.learner.snapshots import LearnerState, latest_state
from streams.scorer.champion import VersionBoard, VersionRefused
from streams.topics import read_all

log = logging.getLogger(__name__)

SNAPSHOT_EVERY_SECONDS = 10.0
POLL_MS = 500


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Learner:
    """The active-or-standby learner process (see the module docstring)."""

    def __init__(self, config: Config, metrics: Metrics, monitoring: Monitoring) -> None:
        self.config = config
        self.topics = config.topics
        self.metrics = metrics
        self.monitoring = monitoring
        self.spec = config.model.spec
        self.core: LearnerCore | None = None
        self.commands_offset = 0
        self.dirty = False
        self.last_snapshot = 0.0
        self.caught_up = False
        self.ready_reason = "waiting for the training partition"
        client = kafka_python_options(config)
        fetch = fetch_options(config.topics.max_message_bytes)
        self.environment = current_environment()
        self.producer = KafkaProducer(**client, acks="all", linger_ms=5, enable_idempotence=True,
                                      max_request_size=config.topics.max_message_bytes)
        self.training = KafkaConsumer(
            **client, group_id=f"streambed-{config.name}-learner",
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500,
            session_timeout_ms=10_000, heartbeat_interval_ms=2_000, **fetch)
        self.commands = KafkaConsumer(**client, enable_auto_commit=False, **fetch)
        self._tp = TopicPartition(self.topics.training, 0)
        self._commands_tp = TopicPartition(self.topics.model_commands, 0)

    # -- activation ------------------------------------------------------------------------

    def activate(self) -> None:
        """This instance got the training partition: restore and seek."""
        lineage_state = read_all(self.config, self.topics.learner_state, 60.0)
        monitors = self.config.monitors
        core_kwargs: dict[str, Any] = dict(
            spec=self.spec, promotion=self.config.model.promotion,
            feature_set=self.config.features.identity,
            sensitive_attributes=monitors.sensitive_attributes,
            intersections=monitors.intersections,
            favourable_outcome=monitors.favourable_outcome,
            training_topic=self.topics.training, environment=self.environment,
            drift=monitors.drift)
        probe = LearnerCore(**core_kwargs)
        state = latest_state(lineage_state, probe.lineage)
        if state is not None:
            self.core = LearnerCore.restore(state.core, **core_kwargs)
            self.commands_offset = state.commands_offset
            self._recollect()
            # A changed policy is on record before anything is decided under it.
            self.publish(self.core.record_policy(_now_ms()))
            log.warning("learner: resuming lineage %s at training offset %d (champion %s)",
                        self.core.lineage, self.core.next_offset, self.core.champion)
        else:
            self.core = probe
            self.commands_offset = self._end_of_commands()
            incumbent, stale = self._incumbent(probe.lineage)
            # The new lineage relearns the whole log; it cuts (so can promote) nothing
            # before it has learned up to the log's end as it is now.
            catch_up_to = self.training.end_offsets([self._tp]).get(self._tp, 0)
            outputs = self.core.start(_now_ms(), incumbent=incumbent,
                                      catch_up_to=catch_up_to,
                                      policy_on_record=self._last_policy(),
                                      stale_shadows=stale,
                                      drift_paused=(self._drift_paused()
                                                    if incumbent is not None else None))
            self.publish(outputs)
            log.warning("learner: lineage %s begins (champion %s); versions are cut once it "
                        "has learned up to training offset %d", self.core.lineage,
                        self.core.champion, catch_up_to)
        self.training.seek(self._tp, self.core.next_offset)
        self.commands.assign([self._commands_tp])
        self.commands.seek(self._commands_tp, self.commands_offset)
        self._restore_gauges()
        self.metrics.learner_active.set(1)
        self.caught_up = False
        self.ready_reason = "catching up with the training log"
        self.save(force=True)

    def _recollect(self) -> None:
        """Read the restored shadows' evidence back from the training log (a snapshot
        keeps their looks, not their rows: see governance.shadow)."""
        core = self.core
        assert core is not None
        start = core.recollect_from()
        if start is None:
            return
        reader = KafkaConsumer(**kafka_python_options(self.config), enable_auto_commit=False,
                               **fetch_options(self.topics.max_message_bytes))
        try:
            reader.assign([self._tp])
            reader.seek(self._tp, start)
            deadline = time.monotonic() + 600
            while reader.position(self._tp) < core.next_offset:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not re-read training {start}..{core.next_offset}"
                                       f" for the shadows' evidence in 600 s")
                for record in reader.poll(timeout_ms=500).get(self._tp, []):
                    try:
                        example = TrainingExample.model_validate_json(record.value or b"")
                    except (ValidationError, ValueError):
                        continue
                    core.recollect(record.offset, example)
        finally:
            reader.close()
        if not core.evidence_complete():
            log.error("learner: the training log no longer holds every example of the "
                      "shadows' evidence (was it trimmed?); they are judged on what remains")
        log.warning("learner: read the shadows' evidence and the next drift reference's "
                    "examples back from training offset %d", start)

    def _restore_gauges(self) -> None:
        """Gauges that describe the lifecycle, set again from the restored state."""
        core = self.core
        if core is None or core.champion is None:
            return
        self.metrics.set_model(core.champion, self.config.features.identity)
        try:
            champion = core.version(core.champion)
        except GovernanceError:
            return
        self.metrics.model_last_promotion.set(champion.status_changed_at / 1000)
        held = [r for r in core.versions() if r.lineage == core.lineage
                and r.sequence > champion.sequence
                and r.status in (VersionStatus.HELD, VersionStatus.CANDIDATE)]
        self.metrics.model_held_since_promotion.set(len(held))
        self.metrics.promotion_paused.set(int(core.paused))

    def deactivate(self) -> None:
        if self.core is not None:
            self.save(force=True)
        self.core = None
        self.metrics.learner_active.set(0)
        self.ready_reason = "standby: another learner holds the training partition"

    def _incumbent(self, lineage: str
                   ) -> tuple[ModelVersionRecord | None, list[ModelVersionRecord]]:
        """The champion serving now, if it belongs to another lineage (a config change),
        and the other lineages' versions still in shadow (no learner will judge them)."""
        board = VersionBoard(self.config.features.identity, self.spec)
        for _, _, value, _ in read_all(self.config, self.topics.model_versions, 60.0):
            try:
                board.add(value)
            except VersionRefused as exc:
                log.error("model.versions: refused a record: %s", exc)
        champion = board.champion_record()
        if champion is not None and champion.lineage == lineage:
            raise GovernanceError(
                f"{champion.version} is the champion of this lineage but the learner-state "
                f"topic {self.topics.learner_state} has no snapshot of it: restore that "
                f"topic (the learner cannot continue a lineage it does not remember)")
        stale = [r for r in board.records.values()
                 if r.status is VersionStatus.SHADOW and r.lineage != lineage]
        return champion, stale

    def _last_policy(self) -> dict[str, Any] | None:
        """The policy of the last record on model.audit (None: none there)."""
        tp = TopicPartition(self.topics.model_audit, 0)
        end = self.commands.end_offsets([tp]).get(tp, 0)
        if not end:
            return None
        reader = KafkaConsumer(**kafka_python_options(self.config), enable_auto_commit=False,
                               **fetch_options(self.topics.max_message_bytes))
        try:
            reader.assign([tp])
            reader.seek(tp, end - 1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for record in reader.poll(timeout_ms=500).get(tp, []):
                    try:
                        return AuditRecord.model_validate_json(record.value or b"").policy
                    except (ValidationError, ValueError):
                        return None
            return None
        finally:
            reader.close()

    def _drift_paused(self) -> Any:
        """The finding of the last drift pause on model.audit if no resume followed it
        (derived from the audit log, as the incumbent is from model.versions)."""
        last = None
        for _, _, value, _ in read_all(self.config, self.topics.model_audit, 60.0):
            try:
                record = AuditRecord.model_validate_json(value or b"")
            except (ValidationError, ValueError):
                continue
            if record.decision.value in ("pause", "resume") or (
                    record.decision.value == "bootstrap" and record.drift is not None):
                last = record
        if last is None or last.decision.value == "resume":
            return None
        return last.drift

    def _end_of_commands(self) -> int:
        return self.commands.end_offsets([self._commands_tp]).get(self._commands_tp, 0)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        learner = self

        class Rebalance(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                if learner._tp in revoked:
                    learner.deactivate()

            def on_partitions_assigned(self, assigned: Any) -> None:
                if learner._tp in assigned:
                    learner.activate()

        self.training.subscribe([self.topics.training], listener=Rebalance())
        self.metrics.learner_active.set(0)
        last_refresh = 0.0
        try:
            while not stop.is_set():
                batch = self.training.poll(timeout_ms=POLL_MS)
                if self.core is not None:
                    for record in batch.get(self._tp, []):
                        self.learn(record)
                    self.handle_commands()
                    self._track_catch_up()
                    self.save()
                if time.monotonic() - last_refresh >= self.config.monitors.refresh_seconds:
                    self.refresh()
                    last_refresh = time.monotonic()
        finally:
            if self.core is not None:
                self.save(force=True)
            self.training.close()
            self.commands.close()
            self.producer.close(timeout=10)

    def learn(self, record: Any) -> None:
        core = self.core
        assert core is not None
        if record.offset < core.next_offset:
            return  # already covered by the snapshot (a fetch from before the seek)
        try:
            example = TrainingExample.model_validate_json(record.value or b"")
        except (ValidationError, ValueError) as exc:
            log.error("training[%d]: not a training example (%s); skipped", record.offset,
                      str(exc).splitlines()[0])
            core.skip(record.offset)
            self.metrics.learner_examples.labels(outcome="invalid").inc()
            return
        learned, repeated = core.examples_learned, core.examples_repeated
        outputs = core.learn(record.offset, example, now_ms=record.timestamp)
        if core.examples_learned > learned:
            self.metrics.learner_examples.labels(outcome="learned").inc()
            self.metrics.model_updates.inc()
            self.monitoring.on_example(
                score=example.score, decision=example.decision, label=example.label,
                groups=dict(example.groups), model_version=example.model_version,
                now=time.time())
        elif core.examples_repeated > repeated:
            self.metrics.learner_examples.labels(outcome="repeated").inc()
        else:
            self.metrics.learner_examples.labels(outcome="skipped").inc()
        self.metrics.learner_next_offset.set(core.next_offset)
        self.metrics.model_last_updated.set(time.time())
        self.metrics.last_label_timestamp.set(example.label_ts / 1000)
        self.publish(outputs)

    def handle_commands(self) -> None:
        core = self.core
        assert core is not None
        for record in self.commands.poll(timeout_ms=0).get(self._commands_tp, []):
            self.commands_offset = record.offset + 1
            self.dirty = True
            try:
                command = ModelCommand.model_validate_json(record.value or b"")
            except (ValidationError, ValueError):
                continue  # an answer, or not a command: nothing to do
            try:
                if command.action == "promote":
                    outputs = core.promote(command.version or "", by=command.by,
                                           reason=command.reason, now_ms=record.timestamp,
                                           override=command.override,
                                           request_id=command.request_id)
                elif command.action == "resume":
                    outputs = core.resume(by=command.by, reason=command.reason,
                                          now_ms=record.timestamp,
                                          request_id=command.request_id)
                elif command.action == "pin_baseline":
                    outputs = core.pin_baseline(command.version, by=command.by,
                                                reason=command.reason,
                                                now_ms=record.timestamp,
                                                request_id=command.request_id)
                else:
                    outputs = core.rollback(command.version, by=command.by,
                                            reason=command.reason, now_ms=record.timestamp,
                                            request_id=command.request_id)
            except GovernanceError as exc:
                answer = CommandAnswer(request_id=command.request_id, error=str(exc),
                                       time=_now_ms())
                self.producer.send(self.topics.model_commands, key=command.request_id.encode(),
                                   value=dumps(answer))
                continue
            self.publish(outputs)

    def publish(self, outputs: list[Any]) -> None:
        core = self.core
        for out in outputs:
            if isinstance(out, ModelVersionRecord):
                self.producer.send(self.topics.model_versions, key=out.version.encode(),
                                   value=dumps(out))
            elif isinstance(out, AuditRecord):
                self.producer.send(self.topics.model_audit, key=out.audit_id.encode(),
                                   value=dumps(out))
                self.metrics.model_decisions.labels(decision=out.decision.value).inc()
                if out.decision.value in ("bootstrap", "promote", "rollback"):
                    self.metrics.model_last_promotion.set(out.time / 1000)
                    self.metrics.model_held_since_promotion.set(0)
                elif out.decision.value in ("hold", "await_review"):
                    self.metrics.model_held_since_promotion.inc()
                log.warning("model %s: %s by %s: %s", out.version, out.decision.value, out.by,
                            out.reason)
        if outputs:
            self.dirty = True
            if core is not None and core.champion:
                self.metrics.set_model(core.champion, self.config.features.identity)
            if core is not None:
                self.metrics.promotion_paused.set(int(core.paused))
            self.save(force=True)

    def save(self, force: bool = False) -> None:
        """Snapshot the state (after what it published), then wait for every ack."""
        core = self.core
        if core is None or not (self.dirty or force):
            return
        if not force and time.monotonic() - self.last_snapshot < SNAPSHOT_EVERY_SECONDS:
            return
        raw = LearnerState(core.snapshot(), self.commands_offset).encode()
        if len(raw) > self.topics.max_message_bytes - 4096:
            raise RuntimeError(
                f"the learner's snapshot is {len(raw)} bytes, over topics.max_message_bytes: "
                f"lower model.promotion.retain_versions, max_shadows or the examples a "
                f"judgement may collect")
        self.producer.send(self.topics.learner_state, key=core.lineage.encode(), value=raw)
        self.producer.flush(timeout=60)
        self.metrics.learner_snapshot_bytes.set(len(raw))
        self.dirty, self.last_snapshot = False, time.monotonic()

    def _track_catch_up(self) -> None:
        if self.caught_up or self.core is None:
            return
        end = self.training.end_offsets([self._tp]).get(self._tp, 0)
        if self.core.next_offset >= end:
            self.caught_up = True
            self.ready_reason = "ready"

    def refresh(self) -> None:
        self.monitoring.refresh(time.time())
        if self.core is None:
            return
        performance, _ = self.core.served()
        nan = float("nan")
        self.metrics.champion_roc_auc.set(
            nan if performance.roc_auc is None else performance.roc_auc)
        self.metrics.champion_log_loss.set(
            nan if performance.log_loss is None else performance.log_loss)

    def readiness(self) -> tuple[bool, str]:
        return self.core is not None and self.caught_up, self.ready_reason
