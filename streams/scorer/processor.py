"""What the worker does with one event or one label, apart from Kafka.

The Faust agents in :mod:`streams.scorer.app` hand each record here together with the tables it
may read and write (plain ``MutableMapping``s, so tests drive this with dicts). Keeping
the per-record logic out of the agents keeps the shell thin and lets the counting rule —
every received record ends in exactly one outcome — be tested directly.

Per entity, one table entry (:class:`EntityRecord`) holds the feature-engine state and the
predictions still waiting for their label: events and labels are keyed and partitioned by
entity, so both agents of one worker touch the same entry, and its changelog partition is
the entity's partition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from features.engine import FeatureEngine
from features.watermark import Watermark
from monitors.metrics import Metrics
from monitors.monitoring import Monitoring
from streams.config import Config
from streams.model import OnlineModel
from streams.records import DeadLetter, Label, ScoredRecord, Source
from streams.validation import EventValidator, Rejection, ValidEvent


@dataclass
class Pending:
    """A scored event waiting for its label (features dropped once labelled)."""

    ts_ms: int
    features: dict[str, Any] | None
    score: float
    decision: int
    groups: dict[str, str | None]
    model_version: str
    labelled: bool = False


@dataclass
class EntityRecord:
    """Everything the worker keeps for one entity."""

    features: Any
    pending: dict[str, Pending] = field(default_factory=dict)
    #: Labels that arrived before their event was scored (the labels agent ran ahead).
    early_labels: dict[str, Label] = field(default_factory=dict)
    max_ts_ms: int = 0
    #: (topic, partition, offset) of the last event applied: a redelivery is recognised.
    last_source: tuple[str, int, int] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Records pickled by an older version lack newer fields: give them the defaults.
        self.__dict__.update(early_labels={}, max_ts_ms=0, last_source=None)
        self.__dict__.update(state)


@dataclass
class PartitionState:
    """What the worker keeps per input partition: its watermark and the next offset due."""

    watermark_ms: int | None = None
    next_offset: int = 0


@dataclass(frozen=True)
class EventResult:
    scored: ScoredRecord | None = None
    dead_letter: DeadLetter | None = None


@dataclass(frozen=True)
class LabelResult:
    outcome: str
    dead_letter: DeadLetter | None = None
    new_model_version: bool = False


class Processor:
    """Validates, featurises, scores and joins labels; counts every outcome."""

    def __init__(self, config: Config, model: OnlineModel, metrics: Metrics,
                 monitoring: Monitoring) -> None:
        self.config = config
        self.schema = config.event
        self.validator = EventValidator(config.event)
        self.engine = FeatureEngine(config.features, config.event.allowed_lateness_ms)
        self.model = model
        self.metrics = metrics
        self.monitoring = monitoring
        self.feature_set = config.features.identity
        self.sensitive = list(config.monitors.sensitive_attributes)
        self._newest_event_ms = 0
        #: Model versions cut since the shell last published a snapshot.
        self.new_versions = 0
        metrics.set_model(model.version, self.feature_set)

    # -- events ---------------------------------------------------------------------------

    def handle_event(
        self,
        raw: bytes,
        source: Source,
        record_ts_ms: int,
        now_ms: int,
        entities: MutableMapping[str, EntityRecord],
        partitions: MutableMapping[str, PartitionState],
    ) -> EventResult:
        """Validate one raw event, then score it or dead-letter it (never both, never neither)."""
        key = _partition_key(source)
        part = partitions.get(key) or PartitionState()
        part.next_offset = max(part.next_offset, source.offset + 1)
        result = self._handle_event(raw, source, record_ts_ms, now_ms, entities, part)
        partitions[key] = part  # reassign: Faust writes the changelog on set
        return result

    @staticmethod
    def missing_before(source: Source, partitions: Mapping[str, PartitionState]) -> int | None:
        """The first offset skipped before ``source`` on its partition, if any was.

        Offsets of the events topic are contiguous, so an event beyond the next offset
        due means records were skipped (faust-streaming drops records fetched across a
        rebalance while the committed offset can move past them). The shell reads the
        gap back and processes it first, so nothing is lost and order is kept.
        """
        part = partitions.get(_partition_key(source))
        if part is None or part.next_offset == 0 or source.offset <= part.next_offset:
            return None
        return part.next_offset

    def _handle_event(
        self,
        raw: bytes,
        source: Source,
        record_ts_ms: int,
        now_ms: int,
        entities: MutableMapping[str, EntityRecord],
        part: PartitionState,
    ) -> EventResult:
        checked = self.validator.validate(raw, record_ts_ms)
        if isinstance(checked, Rejection):
            return self._reject(raw, checked.reason, checked.detail, source, now_ms)
        entity = entities.get(checked.entity_id)
        if entity is not None and _already_applied(entity, source):
            return self._redelivered(checked, entity, source, now_ms)
        watermark = Watermark(self.schema.allowed_lateness_ms)
        watermark.watermark_ms = part.watermark_ms
        if not watermark.observe(checked.ts_ms):
            detail = (f"{self.schema.time_field}={checked.ts_ms} is more than allowed_lateness "
                      f"behind the partition watermark {watermark.watermark_ms}")
            return self._reject(raw, "late", detail, source, now_ms)
        part.watermark_ms = watermark.watermark_ms

        entity = entity or EntityRecord(self.engine.new_state())
        values = self.engine.apply(entity.features, checked.ts_ms, checked.attrs)
        entity.last_source = (source.topic, source.partition, source.offset)
        score, decision = self.model.score(values)
        groups = {a: _as_group(checked.attrs.get(a)) for a in self.sensitive}
        entity.max_ts_ms = max(entity.max_ts_ms, checked.ts_ms)
        self._prune(entity)
        entity.pending[checked.event_id] = Pending(
            checked.ts_ms, values, score, decision, groups, self.model.version)
        early = entity.early_labels.pop(checked.event_id, None)
        if early is not None:
            self._join(entity, early, now_ms)
        entities[checked.entity_id] = entity  # reassign: Faust writes the changelog on set

        record = self._record(checked, values, score, decision, self.model.version, source,
                              now_ms)
        self.metrics.events.labels(outcome="scored").inc()
        self._newest_event_ms = max(self._newest_event_ms, checked.ts_ms)
        self.metrics.last_event_timestamp.set(self._newest_event_ms / 1000)
        self.monitoring.on_scored(features=values, score=score, decision=decision,
                                  groups=groups, model_version=self.model.version,
                                  now=now_ms / 1000)
        return EventResult(scored=record)

    def _record(self, ev: ValidEvent, values: dict[str, Any], score: float, decision: int,
                model_version: str, source: Source, now_ms: int) -> ScoredRecord:
        return ScoredRecord(
            event_id=ev.event_id, entity_id=ev.entity_id, ts=ev.ts_ms, group=ev.group,
            features=values, score=score, decision=decision, model_version=model_version,
            feature_set=self.feature_set, source=source, scored_at=now_ms,
        )

    def _redelivered(self, ev: ValidEvent, entity: EntityRecord, source: Source,
                     now_ms: int) -> EventResult:
        """An event applied before a crash, delivered again: its state is not applied twice.

        Its scored record is sent again, identical, while its features are still held
        (at-least-once output, exactly-once state).
        """
        self.metrics.redeliveries.inc()
        pending = entity.pending.get(ev.event_id)
        if pending is None or pending.features is None:
            # Labelled since (or pruned): the record it had is history; nothing to re-send.
            self.metrics.events.labels(outcome="duplicate").inc()
            return EventResult()
        self.metrics.events.labels(outcome="scored").inc()
        return EventResult(scored=self._record(ev, pending.features, pending.score,
                                               pending.decision, pending.model_version,
                                               source, now_ms))

    def _reject(self, raw: bytes, reason: str, detail: str, source: Source,
                now_ms: int) -> EventResult:
        self.metrics.events.labels(outcome="late" if reason == "late" else "rejected").inc()
        self.metrics.rejections.labels(reason=reason).inc()
        return EventResult(dead_letter=DeadLetter.of(raw, reason, detail, source, now_ms,
                                                     self.schema.max_payload_bytes))

    def _prune(self, entity: EntityRecord) -> None:
        """Forget pending predictions far past their label TTL (keeps the entry bounded)."""
        horizon = entity.max_ts_ms - 2 * self.config.model.label_ttl_ms
        stale = [eid for eid, p in entity.pending.items() if p.ts_ms < horizon]
        for eid in stale:
            del entity.pending[eid]
        orphans = [eid for eid, lab in entity.early_labels.items() if lab.ts < horizon]
        for eid in orphans:
            # Its event never came within twice the label TTL: now it is unmatched.
            del entity.early_labels[eid]
            self.metrics.labels.labels(outcome="unmatched").inc()

    # -- labels ---------------------------------------------------------------------------

    def handle_label(
        self,
        raw: bytes,
        source: Source,
        now_ms: int,
        entities: MutableMapping[str, EntityRecord],
    ) -> LabelResult:
        """Join a label to its pending prediction and learn from it."""
        try:
            label = Label.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            self.metrics.labels.labels(outcome="invalid").inc()
            reason = "malformed_json" if isinstance(exc, json.JSONDecodeError) else "wrong_type"
            detail = str(exc).splitlines()[0] if str(exc) else "invalid label"
            return LabelResult("invalid", DeadLetter.of(raw, reason, detail, source, now_ms,
                                                        self.schema.max_payload_bytes))
        entity = entities.get(label.entity_id)
        if entity is None:
            entity = EntityRecord(self.engine.new_state())
        pending = entity.pending.get(label.event_id)
        if pending is None:
            if label.event_id in entity.early_labels:
                self.metrics.labels.labels(outcome="duplicate").inc()
                return LabelResult("duplicate")
            # Hold it: its event may still be on its way (both topics have a backlog).
            entity.early_labels[label.event_id] = label
            entities[label.entity_id] = entity
            return LabelResult("waiting")
        result = self._join(entity, label, now_ms)
        entities[label.entity_id] = entity
        return result

    def _join(self, entity: EntityRecord, label: Label, now_ms: int) -> LabelResult:
        pending = entity.pending[label.event_id]
        if pending.labelled:
            outcome = "duplicate"
        elif label.ts - pending.ts_ms > self.config.model.label_ttl_ms:
            outcome = "expired"
        else:
            outcome = "joined"
        self.metrics.labels.labels(outcome=outcome).inc()
        if outcome != "joined":
            return LabelResult(outcome)
        assert pending.features is not None
        new_version = self.model.learn(pending.features, label.value)
        pending.labelled, pending.features = True, None
        now = now_ms / 1000
        self.metrics.model_updates.inc()
        self.metrics.last_label_timestamp.set(now)
        self.metrics.model_last_updated.set(now)
        self.monitoring.on_label(score=pending.score, decision=pending.decision,
                                 label=label.value, groups=pending.groups,
                                 model_version=pending.model_version, now=now)
        if new_version:
            self.metrics.set_model(self.model.version, self.feature_set)
            self.monitoring.on_model_version(self.model.version, now)
            self.new_versions += 1
        return LabelResult(outcome, new_model_version=new_version)


def partition_key(topic: str, partition: int) -> str:
    """The key of a partition's entry in the partitions table."""
    return f"{topic}:{partition}"


def _partition_key(source: Source) -> str:
    return partition_key(source.topic, source.partition)


def _already_applied(entity: EntityRecord, source: Source) -> bool:
    last = entity.last_source
    return (last is not None and last[0] == source.topic and last[1] == source.partition
            and source.offset <= last[2])


def _as_group(value: Any) -> str | None:
    return None if value is None else str(value)
