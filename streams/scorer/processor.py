"""What the scorer does with a batch of events or labels, apart from Kafka.

The Faust agents in :mod:`streams.scorer.app` hand each batch here; the tables are
:class:`~streams.scorer.tables.StateTable` objects (over plain dicts in tests). Every input
record ends in exactly one outcome, decided here and made final by the shell once the
batch's sends are accepted (:class:`~streams.scorer.batch.BatchResult`):

- events: ``scored`` (the record goes to ``scored``), ``rejected`` / ``late`` (a dead
  letter with its reason), or ``duplicate`` (a redelivery whose record is history);
- labels: ``joined`` (an example goes to ``training``), ``duplicate``, ``expired``,
  ``invalid`` (a dead letter), or held until its event comes (then ``joined``) or its
  time runs out (``unmatched``).

After a crash the same event or label may come again; a scored event keeps its pending
entry (features, and once joined its label) for the label TTL, so the scored record and
the example are sent again identical rather than lost between two writes that landed
apart.

Whatever goes wrong with one record (a value the features cannot take, a model that
cannot score it, a state that would pass ``state.max_entity_bytes``) sends that record to
the DLQ with a reason, leaves its entity's state as it was before the record, and the
batch goes on.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from features.engine import EntityState, FeatureEngine
from features.label_time import (
    held_label_expired,
    held_label_expiry_ms,
    join_outcome,
    pending_expired,
    pending_expiry_ms,
)
from features.watermark import is_late
from monitors.impact import group_of
from streams.config import Config
from streams.scorer.batch import BatchResult, InRecord, ScoredObservation
from streams.scorer.champion import Champion
from streams.scorer.expiry import ExpiryIndex
from streams.scorer.state import (
    EntityEntry,
    HeldLabel,
    PartitionState,
    Pending,
    StateDecodeError,
    decode,
    encode,
)
from streams.scorer.tables import StateTable
from streams.validation import EventValidator, LabelValidator, Rejection, ValidEvent, ValidLabel

log = logging.getLogger(__name__)
_JSON = msgspec.json.Encoder()


@dataclass
class Tables:
    entities: StateTable
    pending: StateTable
    held: StateTable
    partitions: StateTable

    def all(self) -> tuple[StateTable, ...]:
        return (self.entities, self.pending, self.held, self.partitions)


@dataclass(slots=True)
class _Entity:
    """An entity touched by the current batch."""

    state: EntityState
    last_offset: int
    #: Its encoded entry when the batch began (None: new), to roll back to.
    start: bytes | None
    #: Indexes (into the batch's accepted items) of the events applied, in order.
    applied: list[int] = field(default_factory=list)
    troubled: bool = False
    #: The features as of the entity's latest event time, and that time.
    latest: dict[str, Any] | None = None
    latest_ts_ms: int | None = None

    def saw(self, ts_ms: int, values: dict[str, Any]) -> None:
        if self.latest_ts_ms is None or ts_ms >= self.latest_ts_ms:
            self.latest, self.latest_ts_ms = values, ts_ms

    def entry(self, features: bytes) -> EntityEntry:
        return EntityEntry(features=features, last_offset=self.last_offset,
                           latest=self.latest, latest_ts_ms=self.latest_ts_ms)


@dataclass(slots=True)
class _Item:
    """An accepted event on its way to a scored record."""

    rec: InRecord
    event: ValidEvent
    values: dict[str, Any]
    groups: dict[str, str | None]
    score: float = math.nan
    failed: str | None = None  # the DLQ reason, once it cannot be scored
    #: Its own pending entry from before a crash that lost the entity's state write.
    prior: Pending | None = None


def partition_key(partition: int) -> bytes:
    return b"p%d" % partition


class Processor:
    """Validates, featurises, scores and joins labels, a batch at a time."""

    def __init__(self, config: Config, tables: Tables, champion: Champion,
                 on_decode_error: Callable[[str, bytes, str], None] | None = None) -> None:
        self.config = config
        self.tables = tables
        self.champion = champion
        self.validator = EventValidator(config.event)
        self.label_validator = LabelValidator(config.event)
        self.engine = FeatureEngine(config.features, config.event.allowed_lateness_ms)
        self.feature_set = config.features.identity
        self.sensitive = dict(config.monitors.sensitive_attributes)
        self.topics = config.topics
        self.max_payload = config.event.max_payload_bytes
        self.lateness_ms = config.event.allowed_lateness_ms
        self.ttl_ms = config.model.label_ttl_ms
        self.limits = config.state
        self._cache: OrderedDict[str, _Entity] = OrderedDict()
        self.pending_index = ExpiryIndex()
        self.held_index = ExpiryIndex()
        self._indexed = False
        self.on_decode_error = on_decode_error or (lambda table, key, why: None)
        #: Counts outside a batch's outcomes, read by the shell's metrics.
        self.decode_errors = 0
        self.predictions_expired = 0
        self.predictions_evicted = 0

    # -- state access --------------------------------------------------------------------

    def _decode(self, table: StateTable, key: bytes, kind: type) -> Any:
        raw = table.get(key)
        if raw is None:
            return None
        try:
            return decode(raw, kind)
        except StateDecodeError as exc:
            self.decode_errors += 1
            self.on_decode_error(table.name, key, str(exc))
            log.error("table %s key %r: %s; treated as absent", table.name, key[:80], exc)
            return None

    def _partition(self, parts: dict[int, PartitionState], partition: int) -> PartitionState:
        part = parts.get(partition)
        if part is None:
            key = partition_key(partition)
            part = self._decode(self.tables.partitions, key, PartitionState) or PartitionState()
            parts[partition] = part
        return part

    def _flush_partitions(self, parts: dict[int, PartitionState]) -> None:
        for partition, part in parts.items():
            self.tables.partitions.put(partition_key(partition), encode(part), partition)

    def next_offset(self, partition: int, *, labels: bool = False) -> int:
        """The next offset due on an events partition, or with ``labels`` on a labels
        partition (0 when nothing was processed)."""
        part = self._decode(self.tables.partitions, partition_key(partition), PartitionState)
        if part is None:
            return 0
        return part.next_label_offset if labels else part.next_offset

    def missing_before(self, partition: int, offset: int, *, labels: bool = False) -> int | None:
        """The first offset skipped before ``offset`` on its partition, if any was.

        Offsets of the input topics are contiguous, so a record beyond the next offset
        due means records were skipped (faust-streaming can drop records fetched across a
        rebalance while the committed offset moves past them); the shell reads them back.
        """
        due = self.next_offset(partition, labels=labels)
        return due if 0 < due < offset else None

    def entity_features(self, entity_id: str) -> dict[str, Any] | None:
        """The entity's features as of its latest event, for ``GET /features/{entity}``."""
        entry = self._decode(self.tables.entities, entity_id.encode(), EntityEntry)
        if entry is None or entry.latest is None:
            return None
        return {"entity_id": entity_id, "features": entry.latest,
                "as_of": entry.latest_ts_ms, "feature_set": self.feature_set,
                "model_version": self.champion.version}

    def _load_entity(self, entity_id: str) -> _Entity:
        cached = self._cache.get(entity_id)
        raw = self.tables.entities.get(entity_id.encode())
        if cached is not None:
            self._cache.move_to_end(entity_id)
            return _Entity(cached.state, cached.last_offset, raw, latest=cached.latest,
                           latest_ts_ms=cached.latest_ts_ms)
        entry = self._decode(self.tables.entities, entity_id.encode(), EntityEntry)
        if entry is not None:
            try:
                return _Entity(self.engine.decode_state(entry.features), entry.last_offset, raw,
                               latest=entry.latest, latest_ts_ms=entry.latest_ts_ms)
            except ValueError as exc:  # features.StateDecodeError is a ValueError
                self.decode_errors += 1
                self.on_decode_error("entities", entity_id.encode(), str(exc))
                log.error("entity %r: feature state does not decode (%s); starting afresh",
                          entity_id[:80], exc)
        return _Entity(self.engine.new_state(), -1, raw)

    def _restore(self, ent: _Entity) -> EntityState:
        """The entity's state as it was when the batch began."""
        if ent.start is not None:
            try:
                return self.engine.decode_state(decode(ent.start, EntityEntry).features)
            except ValueError:
                pass
        return self.engine.new_state()

    def forget_cache(self) -> None:
        """Partitions moved: live states may be stale; the expiry index is rebuilt."""
        self._cache.clear()
        self.pending_index.clear()
        self.held_index.clear()
        self._indexed = False

    # -- events --------------------------------------------------------------------------

    def process_events(self, records: list[InRecord], now_ms: int) -> BatchResult:
        res = BatchResult()
        parts: dict[int, PartitionState] = {}
        work: dict[str, _Entity] = {}
        items: list[_Item] = []
        batch_ids: dict[str, tuple[int, int]] = {}
        for rec in records:
            part = self._partition(parts, rec.partition)
            part.next_offset = max(part.next_offset, rec.offset + 1)
            try:
                self._accept(rec, part, work, items, batch_ids, res, now_ms)
            except Exception as exc:  # a bug must still end in one outcome for this record
                log.exception("event %s[%d]@%d: unexpected error", *rec.source)
                self._reject(res, rec, "processing_error", f"{type(exc).__name__}: {exc}",
                             now_ms)
        self._score(items, work)
        for entity_id, ent in work.items():
            self._commit_entity(entity_id, ent, items)
        for item in items:
            if item.failed is not None:
                self._reject(res, item.rec, item.failed[0], item.failed[1], now_ms)
            else:
                self._emit(item, res, now_ms)
        self._flush_partitions(parts)
        self._cap_pending()
        self._flush(res)
        self._trim_cache()
        return res

    def _flush(self, res: BatchResult) -> None:
        """The batch's changelog writes: pending predictions and held labels go with the
        outputs; entity states and partition positions (``progress``) only after those
        landed (see :mod:`streams.scorer.batch`)."""
        for table in (self.tables.pending, self.tables.held):
            res.changelog.extend(table.flush())
        for table in (self.tables.entities, self.tables.partitions):
            res.progress.extend(table.flush())

    def _reject(self, res: BatchResult, rec: InRecord, reason: str, detail: str,
                now_ms: int) -> None:
        res.events["late" if reason == "late" else "rejected"] += 1
        res.dead_letter(self.topics.dlq, rec, reason, detail, now_ms, self.max_payload)

    def _accept(self, rec: InRecord, part: PartitionState, work: dict[str, _Entity],
                items: list[_Item], batch_ids: dict[str, tuple[int, int]], res: BatchResult,
                now_ms: int) -> None:
        checked = self.validator.validate(rec.raw, rec.timestamp_ms)
        if isinstance(checked, Rejection):
            self._reject(res, rec, checked.reason, checked.detail, now_ms)
            return
        ent = work.get(checked.entity_id)
        if ent is None:
            ent = work[checked.entity_id] = self._load_entity(checked.entity_id)
        if rec.offset <= ent.last_offset:
            self._redelivered(rec, checked, res)
            return
        seen = batch_ids.get(checked.event_id)
        pending = None if seen else self._decode(
            self.tables.pending, checked.event_id.encode(), Pending)
        prior = None
        if pending is not None and (pending.partition, pending.offset) == (rec.partition,
                                                                         rec.offset):
            # Scored before a crash whose entity state write was lost: apply it again.
            prior, pending = pending, None
        if seen is not None or pending is not None:
            where = seen or (pending.partition, pending.offset)  # type: ignore[union-attr]
            self._reject(res, rec, "duplicate_event_id",
                         f"{self.config.event.id_field}={checked.event_id[:80]!r} was already "
                         f"scored (partition {where[0]}, offset {where[1]})", now_ms)
            return
        # Accepted once at this position: the watermark may include later events of the
        # same lost batch, but it was not late when it came.
        if prior is None and is_late(checked.ts_ms, part.watermark_ms, self.lateness_ms):
            detail = (f"{self.config.event.time_field}={checked.ts_ms} is more than "
                      f"allowed_lateness behind the partition watermark {part.watermark_ms}")
            self._reject(res, rec, "late", detail, now_ms)
            return
        try:
            values = self.engine.apply(ent.state, checked.ts_ms, checked.attrs)
        except Exception as exc:
            ent.state = self._replay(ent, items)  # apply may have changed it before raising
            self._reject(res, rec, "processing_error",
                         f"features: {type(exc).__name__}: {exc}", now_ms)
            return
        part.watermark_ms = max(part.watermark_ms or checked.ts_ms, checked.ts_ms)
        ent.last_offset = rec.offset
        ent.saw(checked.ts_ms, values)
        ent.applied.append(len(items))
        batch_ids[checked.event_id] = (rec.partition, rec.offset)
        groups = {a: group_of(checked.attrs.get(a), g) for a, g in self.sensitive.items()}
        items.append(_Item(rec, checked, values, groups, prior=prior))

    def _replay(self, ent: _Entity, items: list[_Item]) -> EntityState:
        """The entity's state with only its batch events that are still good applied."""
        state = self._restore(ent)
        for idx in ent.applied:
            item = items[idx]
            if item.failed is None:
                self.engine.apply(state, item.event.ts_ms, item.event.attrs)
        return state

    def _redelivered(self, rec: InRecord, ev: ValidEvent, res: BatchResult) -> None:
        """An event applied before a crash, delivered again: its state is not applied twice,
        and its scored record is sent again, identical, while its features are held."""
        res.redeliveries += 1
        pending = self._decode(self.tables.pending, ev.event_id.encode(), Pending)
        if (pending is None or pending.features is None or pending.offset != rec.offset
                or pending.partition != rec.partition):
            res.events["duplicate"] += 1  # labelled or expired since: the record is history
            return
        res.events["scored"] += 1
        res.sends.append((self.topics.scored, rec.key, self._scored_bytes(
            ev, pending.features, pending.score, pending.decision, pending.model_version,
            rec, pending.scored_at), None))
        if pending.label is not None:  # its example may not have been acknowledged either
            self._send_example(ev.event_id.encode(), pending, res)

    def _score(self, items: list[_Item], work: dict[str, _Entity]) -> None:
        if not items:
            return
        try:
            scores = self.champion.score_many([it.values for it in items])
        except Exception:
            scores = []
            for it in items:  # find the record(s) the model cannot score
                try:
                    scores.append(self.champion.score_one(it.values))
                except Exception as exc:
                    scores.append(math.nan)
                    it.failed = ("processing_error", f"model: {type(exc).__name__}: {exc}")
                    work[it.event.entity_id].troubled = True
        for it, score in zip(items, scores, strict=True):
            it.score = score

    def _commit_entity(self, entity_id: str, ent: _Entity, items: list[_Item]) -> None:
        """Write the entity's state once for the batch, or settle its trouble event by event."""
        if not ent.applied:
            return
        if not ent.troubled:
            raw = self._entry_bytes(ent)
            if raw is not None and len(raw) <= self.limits.max_entity_bytes:
                self._store_entity(entity_id, ent, raw, items)
                return
        self._commit_one_by_one(entity_id, ent, items)

    def _entry_bytes(self, ent: _Entity) -> bytes | None:
        try:
            return encode(ent.entry(self.engine.encode_state(ent.state)))
        except Exception as exc:
            log.error("an entity state does not encode: %r", exc)
            return None

    def _store_entity(self, entity_id: str, ent: _Entity, raw: bytes,
                      items: list[_Item]) -> None:
        partition = items[ent.applied[-1]].rec.partition
        self.tables.entities.put(entity_id.encode(), raw, partition)
        ent.applied, ent.troubled, ent.start = [], False, None
        self._cache[entity_id] = ent
        self._cache.move_to_end(entity_id)

    def _commit_one_by_one(self, entity_id: str, ent: _Entity, items: list[_Item]) -> None:
        """The slow path: re-apply the entity's batch events one at a time from the state
        before the batch; an event that cannot be scored or encoded, or that would make the
        state too large, fails alone and leaves the state as it was before it."""
        state = self._restore(ent)
        start = decode(ent.start, EntityEntry) if ent.start is not None else None
        ent.latest = start.latest if start is not None else None
        ent.latest_ts_ms = start.latest_ts_ms if start is not None else None
        prev = self.engine.encode_state(state)
        last_raw: bytes | None = None
        for idx in ent.applied:
            item = items[idx]
            before = (ent.latest, ent.latest_ts_ms, ent.last_offset)
            try:
                values = self.engine.apply(state, item.event.ts_ms, item.event.attrs)
                score = self.champion.score_one(values)
                ent.last_offset = item.rec.offset
                ent.saw(item.event.ts_ms, values)
                raw = encode(ent.entry(self.engine.encode_state(state)))
            except Exception as exc:
                ent.latest, ent.latest_ts_ms, ent.last_offset = before
                item.failed = ("processing_error", f"{type(exc).__name__}: {exc}")
                state = self.engine.decode_state(prev)
                continue
            if len(raw) > self.limits.max_entity_bytes:
                ent.latest, ent.latest_ts_ms, ent.last_offset = before
                item.failed = ("entity_state_limit",
                               f"entity {entity_id[:80]!r}: its state would take {len(raw)} "
                               f"bytes, over state.max_entity_bytes="
                               f"{self.limits.max_entity_bytes}")
                state = self.engine.decode_state(prev)
                continue
            item.values, item.score, item.failed = values, score, None
            prev, last_raw = self.engine.encode_state(state), raw
        ent.state = state
        if last_raw is not None:
            self._store_entity(entity_id, ent, last_raw, items)
        else:
            self._cache.pop(entity_id, None)

    def _emit(self, item: _Item, res: BatchResult, now_ms: int) -> None:
        ev, rec = item.event, item.rec
        decision = self.champion.decision(item.score)
        version = self.champion.version
        res.sends.append((self.topics.scored, rec.key, self._scored_bytes(
            ev, item.values, item.score, decision, version, rec, now_ms), None))
        res.events["scored"] += 1
        res.scored_produce_ms.append(rec.timestamp_ms)
        res.newest_event_ms = max(res.newest_event_ms or ev.ts_ms, ev.ts_ms)
        res.observations.append(ScoredObservation(item.values, item.score, decision,
                                                  item.groups))
        pending = Pending(entity_id=ev.entity_id, ts_ms=ev.ts_ms, partition=rec.partition,
                          offset=rec.offset, features=item.values, score=item.score,
                          decision=decision, model_version=version, groups=item.groups,
                          scored_at=now_ms)
        key = ev.event_id.encode()
        if item.prior is not None and item.prior.label is not None:
            pending.labelled, pending.label = True, item.prior.label
            self._send_example(key, pending, res)  # again: the first may not have landed
        else:
            held = self._decode(self.tables.held, key, HeldLabel)
            if held is not None:
                self.tables.held.delete(key, rec.partition)
                self._join(key, pending, held, res)
        self.tables.pending.put(key, encode(pending), rec.partition)
        self.pending_index.push(rec.partition, pending_expiry_ms(
            ev.ts_ms, self.ttl_ms, self.lateness_ms), key)

    def _scored_bytes(self, ev: ValidEvent, values: dict[str, Any], score: float,
                      decision: int, version: str, rec: InRecord, scored_at: int) -> bytes:
        return _JSON.encode({
            "event_id": ev.event_id, "entity_id": ev.entity_id, "ts": ev.ts_ms,
            "group": ev.group, "features": values, "score": score, "decision": decision,
            "model_version": version, "feature_set": self.feature_set,
            "source": {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset},
            "scored_at": scored_at,
        })

    # -- labels --------------------------------------------------------------------------

    def process_labels(self, records: list[InRecord], now_ms: int) -> BatchResult:
        res = BatchResult()
        parts: dict[int, PartitionState] = {}
        for rec in records:
            part = self._partition(parts, rec.partition)
            part.next_label_offset = max(part.next_label_offset, rec.offset + 1)
            try:
                self._label(rec, part, res, now_ms)
            except Exception as exc:  # a bug must still end in one outcome for this record
                log.exception("label %s[%d]@%d: unexpected error", *rec.source)
                res.labels["invalid"] += 1
                res.dead_letter(self.topics.dlq, rec, "processing_error",
                                f"{type(exc).__name__}: {exc}", now_ms, self.max_payload,
                                "label")
        self._flush_partitions(parts)
        self._flush(res)
        return res

    def _label(self, rec: InRecord, part: PartitionState, res: BatchResult,
               now_ms: int) -> None:
        checked = self.label_validator.validate(rec.raw, rec.timestamp_ms)
        if isinstance(checked, Rejection):
            res.labels["invalid"] += 1
            res.dead_letter(self.topics.dlq, rec, checked.reason, checked.detail, now_ms,
                            self.max_payload, "label")
            return
        part.label_watermark_ms = max(part.label_watermark_ms or checked.ts_ms, checked.ts_ms)
        res.newest_label_ms = max(res.newest_label_ms or checked.ts_ms, checked.ts_ms)
        key = checked.event_id.encode()
        pending = self._decode(self.tables.pending, key, Pending)
        if pending is not None:
            self._join(key, pending, _held(checked, rec), res)
            self.tables.pending.put(key, encode(pending), pending.partition)
            return
        if key in self.tables.held:
            res.labels["duplicate"] += 1
        elif len(self.tables.held) >= self.limits.max_held_labels:
            res.labels["unmatched"] += 1
            res.dead_letter(self.topics.dlq, rec, "held_labels_full",
                            f"{len(self.tables.held)} labels already wait for their events "
                            f"(state.max_held_labels={self.limits.max_held_labels})",
                            now_ms, self.max_payload, "label")
        else:  # its event may still be on its way: both topics have a backlog
            self.tables.held.put(key, encode(_held(checked, rec)), rec.partition)
            self.held_index.push(rec.partition,
                                 held_label_expiry_ms(checked.ts_ms, self.ttl_ms), key)

    def _join(self, key: bytes, pending: Pending, label: HeldLabel, res: BatchResult) -> None:
        """Join a label to its scored event: one example to ``training`` (mutates pending)."""
        if pending.label is not None and _same_record(pending.label, label):
            # This very label delivered again after a crash: its example may never have
            # been acknowledged, so it goes again (the learner drops repeats by event_id).
            res.labels["joined"] += 1
            self._send_example(key, pending, res)
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
        self._send_example(key, pending, res)

    def _send_example(self, key: bytes, pending: Pending, res: BatchResult) -> None:
        assert pending.label is not None
        res.sends.append((self.topics.training, key,
                          self._example_bytes(key.decode(), pending, pending.label), 0))
        res.examples += 1

    def _example_bytes(self, event_id: str, p: Pending, label: HeldLabel) -> bytes:
        return _JSON.encode({
            "event_id": event_id, "entity_id": p.entity_id, "features": p.features,
            "label": label.label, "score": p.score, "decision": p.decision,
            "model_version": p.model_version, "feature_set": self.feature_set,
            "groups": p.groups, "event_ts": p.ts_ms, "label_ts": label.ts_ms,
            "scored_at": p.scored_at,
            "event_source": {"topic": self.topics.events, "partition": p.partition,
                             "offset": p.offset},
            "label_source": {"topic": label.topic, "partition": label.partition,
                             "offset": label.offset},
        })

    # -- expiry (on a timer) -------------------------------------------------------------

    def _build_index(self) -> None:
        """After a rebalance: index what the tables hold (once)."""
        for key, raw in self.tables.pending.items():
            try:
                p = decode(raw, Pending)
            except StateDecodeError:
                continue
            self.pending_index.push(p.partition, pending_expiry_ms(
                p.ts_ms, self.ttl_ms, self.lateness_ms), key)
        for key, raw in self.tables.held.items():
            try:
                h = decode(raw, HeldLabel)
            except StateDecodeError:
                continue
            self.held_index.push(h.partition, held_label_expiry_ms(h.ts_ms, self.ttl_ms), key)
        self._indexed = True

    def expire(self, partitions: list[int]) -> BatchResult:
        """Forget scored events and held labels whose label TTL has passed on each
        partition's event-time clock; held labels given up count as ``unmatched``."""
        if not self._indexed:
            self._build_index()
        res = BatchResult()
        for partition in partitions:
            part = self._decode(self.tables.partitions, partition_key(partition),
                                PartitionState)
            clock = part.clock_ms() if part is not None else None
            if clock is None:
                continue
            for _, key in self.pending_index.due(partition, clock):
                p = self._decode(self.tables.pending, key, Pending)
                if p is not None and pending_expired(event_ts_ms=p.ts_ms, clock_ms=clock,
                                                     label_ttl_ms=self.ttl_ms,
                                                     lateness_ms=self.lateness_ms):
                    self.tables.pending.delete(key, partition)
                    self.predictions_expired += not p.labelled
            for _, key in self.held_index.due(partition, clock):
                h = self._decode(self.tables.held, key, HeldLabel)
                if h is not None and held_label_expired(label_ts_ms=h.ts_ms, clock_ms=clock,
                                                        label_ttl_ms=self.ttl_ms):
                    self.tables.held.delete(key, partition)
                    res.labels["unmatched"] += 1
        self._flush(res)
        return res

    def _cap_pending(self) -> None:
        """Beyond ``state.max_pending`` the oldest scored events stop waiting for labels."""
        excess = len(self.tables.pending) - self.limits.max_pending
        while excess > 0:
            oldest = self.pending_index.pop_oldest()
            if oldest is None:
                return
            partition, _, key = oldest
            if key in self.tables.pending:
                self.tables.pending.delete(key, partition)
                self.predictions_evicted += 1
                excess -= 1

    def _trim_cache(self) -> None:
        while len(self._cache) > self.limits.entity_cache:
            self._cache.popitem(last=False)


def _same_record(a: HeldLabel, b: HeldLabel) -> bool:
    return (a.topic, a.partition, a.offset) == (b.topic, b.partition, b.offset)


def _held(label: ValidLabel, rec: InRecord) -> HeldLabel:
    return HeldLabel(entity_id=label.entity_id, label=label.label, ts_ms=label.ts_ms,
                     topic=rec.topic, partition=rec.partition, offset=rec.offset)

