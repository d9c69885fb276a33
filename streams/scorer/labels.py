"""The label join: a label meets its scored event's pending prediction, and one training
example goes to ``training``.

A label whose event has not been scored yet is held (``held`` table, capped) until the
event comes or its label TTL passes on event time (:mod:`streams.scorer.expiry`). Label
outcomes: ``joined``, ``duplicate``, ``expired`` (later than the TTL after its event),
``invalid`` (a dead letter) and ``unmatched`` (given up, or no room to hold it).
"""

from __future__ import annotations

import logging

import msgspec

from features.label_time import held_label_expiry_ms, join_outcome
from streams.config import Config
from streams.scorer.batch import BatchResult, InRecord
from streams.scorer.expiry import ExpiryIndex
from streams.scorer.positions import Positions
from streams.scorer.state import HeldLabel, PartitionState, Pending, encode
from streams.scorer.tables import Tables
from streams.validation import LabelValidator, Rejection, ValidLabel

log = logging.getLogger(__name__)
_JSON = msgspec.json.Encoder()


class LabelJoin:
    """Labels batch by batch, and the join both paths (labels, events) end in."""

    def __init__(self, config: Config, tables: Tables, positions: Positions,
                 held_index: ExpiryIndex) -> None:
        self.tables = tables
        self.positions = positions
        self.held_index = held_index
        self.validator = LabelValidator(config.event)
        self.topics = config.topics
        self.feature_set = config.features.identity
        self.max_payload = config.event.max_payload_bytes
        self.ttl_ms = config.model.label_ttl_ms
        self.max_held = config.state.max_held_labels

    def process_labels(self, records: list[InRecord], now_ms: int) -> BatchResult:
        res = BatchResult()
        parts = self.positions.batch()
        for rec in records:
            part = parts.get(rec.partition)
            part.next_label_offset = max(part.next_label_offset, rec.offset + 1)
            try:
                self._label(rec, part, res, now_ms)
            except Exception as exc:  # a bug must still end in one outcome for this record
                log.exception("label %s[%d]@%d: unexpected error", *rec.source)
                res.labels["invalid"] += 1
                res.dead_letter(self.topics.dlq, rec, "processing_error",
                                f"{type(exc).__name__}: {exc}", now_ms, self.max_payload,
                                "label")
        parts.flush()
        return res

    def _label(self, rec: InRecord, part: PartitionState, res: BatchResult,
               now_ms: int) -> None:
        checked = self.validator.validate(rec.raw, rec.timestamp_ms)
        if isinstance(checked, Rejection):
            res.labels["invalid"] += 1
            res.dead_letter(self.topics.dlq, rec, checked.reason, checked.detail, now_ms,
                            self.max_payload, "label")
            return
        part.label_watermark_ms = max(part.label_watermark_ms or checked.ts_ms, checked.ts_ms)
        res.newest_label_ms = max(res.newest_label_ms or checked.ts_ms, checked.ts_ms)
        key = checked.event_id.encode()
        held = self.tables.held
        pending = self.tables.read(self.tables.pending, key, Pending)
        if pending is not None:
            self.join(key, pending, held_label(checked, rec), res)
            self.tables.pending.put(key, encode(pending), pending.partition)
            return
        if key in held:
            res.labels["duplicate"] += 1
        elif len(held) >= self.max_held:
            res.labels["unmatched"] += 1
            res.dead_letter(self.topics.dlq, rec, "held_labels_full",
                            f"{len(held)} labels already wait for their events "
                            f"(state.max_held_labels={self.max_held})",
                            now_ms, self.max_payload, "label")
        else:  # its event may still be on its way: both topics have a backlog
            held.put(key, encode(held_label(checked, rec)), rec.partition)
            self.held_index.push(rec.partition,
                                 held_label_expiry_ms(checked.ts_ms, self.ttl_ms), key)

    def take_held(self, key: bytes, partition: int) -> HeldLabel | None:
        """The label held for this event, removed from ``held`` (None if none waits)."""
        label = self.tables.read(self.tables.held, key, HeldLabel)
        if label is not None:
            self.tables.held.delete(key, partition)
        return label

    def join(self, key: bytes, pending: Pending, label: HeldLabel, res: BatchResult) -> None:
        """Join a label to its scored event: one example to ``training`` (mutates pending)."""
        if pending.label is not None and _same_record(pending.label, label):
            # This very label delivered again after a crash: its example may never have
            # been acknowledged, so it goes again (the learner drops repeats by event_id).
            res.labels["joined"] += 1
            self.send_example(key, pending, res)
            return
        if pending.labelled or pending.features is None:
            res.labels["duplicate"] += 1
            return
        outcome = join_outcome(event_ts_ms=pending.ts_ms, label_ts_ms=label.ts_ms,
                               label_ttl_ms=self.ttl_ms)
        res.labels[outcome] += 1
        if outcome != "joined":
            return
        pending.labelled, pending.label = True, label
        self.send_example(key, pending, res)

    def send_example(self, key: bytes, pending: Pending, res: BatchResult) -> None:
        assert pending.label is not None
        res.sends.append((self.topics.training, key,
                          self._example_bytes(key.decode(), pending, pending.label), 0))
        res.examples += 1
        res.labelled.append((pending.score, pending.decision, pending.label.label,
                             pending.model_version))

    def _example_bytes(self, event_id: str, p: Pending, label: HeldLabel) -> bytes:
        return _JSON.encode({
            "event_id": event_id, "entity_id": p.entity_id, "features": p.features,
            "label": label.label, "score": p.score, "decision": p.decision,
            "model_version": p.model_version, "feature_set": self.feature_set,
            "groups": p.groups, "event_ts": p.ts_ms, "label_ts": label.ts_ms,
            "scored_at": p.scored_at, "shadow_scores": p.shadow_scores,
            "event_source": {"topic": self.topics.events, "partition": p.partition,
                             "offset": p.offset},
            "label_source": {"topic": label.topic, "partition": label.partition,
                             "offset": label.offset},
        })


def _same_record(a: HeldLabel, b: HeldLabel) -> bool:
    return (a.topic, a.partition, a.offset) == (b.topic, b.partition, b.offset)


def held_label(label: ValidLabel, rec: InRecord) -> HeldLabel:
    return HeldLabel(entity_id=label.entity_id, label=label.label, ts_ms=label.ts_ms,
                     topic=rec.topic, partition=rec.partition, offset=rec.offset)
