"""The event path: validate, apply to the entity's features, score with the champion, and
emit one outcome per event.

Outcomes: ``scored`` (the record goes to ``scored`` and a pending prediction waits for its
label), ``rejected`` / ``late`` (a dead letter with its reason), ``duplicate`` (a
redelivery whose record is history). Whatever goes wrong with one event (a value the
features cannot take, a model that cannot score it, a state that would pass
``state.max_entity_bytes``) sends that event to the DLQ with a reason (a
:class:`~streams.scorer.batch.Failure`), leaves its entity's state as it was before the
event, and the batch goes on.

The champion is read once per batch: every record of the batch, and the batch result's
``model_version``, name the version that scored it, whatever is adopted meanwhile. So are
the versions in shadow: each scores every event the batch scores, after the champion and
on the same features, and its score goes into the pending prediction (never into the
scored record). A shadow that cannot score an event leaves that event without its score;
it never changes the event's outcome.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from features.engine import EntityState, FeatureEngine
from features.watermark import is_late
from monitors.impact import group_of
from streams.config import Config
from streams.records import scored_record_bytes
from streams.rejections import rejection
from streams.scorer.batch import BatchResult, Failure, InRecord, ScoredObservation
from streams.scorer.champion import Champion
from streams.scorer.entities import Entities, EntityWork
from streams.scorer.expiry import Expiry
from streams.scorer.labels import LabelJoin
from streams.scorer.positions import PositionBatch, Positions
from streams.scorer.state import PartitionState, Pending, encode
from streams.scorer.tables import Tables
from streams.validation import EventValidator, Rejection, ValidEvent

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Item:
    """An accepted event on its way to a scored record."""

    rec: InRecord
    event: ValidEvent
    values: dict[str, Any]
    groups: dict[str, str | None]
    score: float = math.nan
    failed: Failure | None = None  # once it cannot be scored
    #: Its own pending entry from before a crash that lost the entity's state write.
    prior: Pending | None = None
    #: The score of each version in shadow that scored it.
    shadow_scores: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Batch:
    """One events batch in progress."""

    now_ms: int
    champion: Champion
    shadows: tuple[Champion, ...]
    res: BatchResult
    parts: PositionBatch
    work: dict[str, EntityWork] = field(default_factory=dict)
    items: list[_Item] = field(default_factory=list)
    #: event_id -> (partition, offset) of the events accepted so far in this batch.
    ids: dict[str, tuple[int, int]] = field(default_factory=dict)


class EventPath:
    """Events batch by batch (see the module docstring)."""

    def __init__(self, config: Config, tables: Tables, positions: Positions,
                 entities: Entities, joins: LabelJoin, expiry: Expiry,
                 champion: Champion) -> None:
        self.tables = tables
        self.positions = positions
        self.entities = entities
        self.joins = joins
        self.expiry = expiry
        self.champion = champion
        #: The versions in shadow, scored beside the champion (swapped between batches).
        self.shadows: tuple[Champion, ...] = ()
        self.validator = EventValidator(config.event)
        self.engine: FeatureEngine = entities.engine
        self.feature_set = config.features.identity
        self.sensitive = dict(config.monitors.sensitive_attributes)
        self.topics = config.topics
        self.id_field, self.time_field = config.event.id_field, config.event.time_field
        self.max_payload = config.event.max_payload_bytes
        self.lateness_ms = config.event.allowed_lateness_ms
        self.max_entity_bytes = config.state.max_entity_bytes

    def process_events(self, records: list[InRecord], now_ms: int) -> BatchResult:
        champion = self.champion  # one version (and one set of shadows) for the batch
        b = _Batch(now_ms, champion, self.shadows,
                   BatchResult(model_version=champion.version, batch_records=len(records)),
                   self.positions.batch())
        for rec in records:
            part = b.parts.get(rec.partition)
            part.next_offset = max(part.next_offset, rec.offset + 1)
            try:
                self._accept(b, rec, part)
            except Exception as exc:  # a bug must still end in one outcome for this record
                log.exception("event %s[%d]@%d: unexpected error", *rec.source)
                self._reject(b, rec, Failure("processing_error", f"{type(exc).__name__}: {exc}"))
        self._score(b)
        for entity_id, ent in b.work.items():
            self._commit_entity(b, entity_id, ent)
        self._score_in_shadow(b)
        for item in b.items:
            if item.failed is not None:
                self._reject(b, item.rec, item.failed)
            else:
                self._emit(b, item)
        b.parts.flush()
        self.expiry.cap_pending(b.res)
        self.entities.trim()
        return b.res

    def _reject(self, b: _Batch, rec: InRecord, failure: Failure) -> None:
        b.res.events["late" if failure.reason == "late" else "rejected"] += 1
        b.res.dead_letter(self.topics.dlq, rec, failure.reason, failure.detail, b.now_ms,
                          self.max_payload)

    def _accept(self, b: _Batch, rec: InRecord, part: PartitionState) -> None:
        checked = self.validator.validate(rec.raw, rec.timestamp_ms)
        if isinstance(checked, Rejection):
            self._reject(b, rec, Failure(checked.reason, checked.detail))
            return
        ent = b.work.get(checked.entity_id)
        if ent is None:
            ent = b.work[checked.entity_id] = self.entities.load(checked.entity_id)
        if rec.offset <= ent.last_offset:
            self._redelivered(b, rec, checked)
            return
        seen = b.ids.get(checked.event_id)
        pending = None if seen else self.tables.read(
            self.tables.pending, checked.event_id.encode(), Pending)
        prior = None
        if pending is not None and (pending.partition, pending.offset) == (rec.partition,
                                                                         rec.offset):
            # Scored before a crash whose entity state write was lost: apply it again.
            prior, pending = pending, None
        if seen is not None or pending is not None:
            where = seen or (pending.partition, pending.offset)  # type: ignore[union-attr]
            said = rejection("duplicate_event_id", self.id_field, checked.event_id,
                             partition=where[0], offset=where[1])
            self._reject(b, rec, Failure(said.reason, said.detail))
            return
        # Accepted once at this position: the watermark may include later events of the
        # same lost batch, but it was not late when it came.
        if prior is None and is_late(checked.ts_ms, part.watermark_ms, self.lateness_ms):
            said = rejection("late", self.time_field, checked.ts_ms,
                             watermark_ms=part.watermark_ms)
            self._reject(b, rec, Failure(said.reason, said.detail))
            return
        try:
            values = self.engine.apply(ent.state, checked.ts_ms, checked.attrs)
        except Exception as exc:
            ent.state = self._replay(ent, b.items)  # apply may have changed it before raising
            self._reject(b, rec, Failure("processing_error",
                                         f"features: {type(exc).__name__}: {exc}"))
            return
        part.watermark_ms = max(part.watermark_ms or checked.ts_ms, checked.ts_ms)
        ent.last_offset = rec.offset
        ent.saw(checked.ts_ms, values)
        ent.applied.append(len(b.items))
        b.ids[checked.event_id] = (rec.partition, rec.offset)
        groups = {a: group_of(checked.attrs.get(a), g) for a, g in self.sensitive.items()}
        b.items.append(_Item(rec, checked, values, groups, prior=prior))

    def _replay(self, ent: EntityWork, items: list[_Item]) -> EntityState:
        """The entity's state with only its batch events that are still good applied."""
        state = self.entities.restore(ent)
        for idx in ent.applied:
            item = items[idx]
            if item.failed is None:
                self.engine.apply(state, item.event.ts_ms, item.event.attrs)
        return state

    def _redelivered(self, b: _Batch, rec: InRecord, ev: ValidEvent) -> None:
        """An event applied before a crash, delivered again: its state is not applied twice,
        and its scored record is sent again, identical, while its features are held."""
        res = b.res
        res.redeliveries += 1
        pending = self.tables.read(self.tables.pending, ev.event_id.encode(), Pending)
        if (pending is None or pending.features is None or pending.offset != rec.offset
                or pending.partition != rec.partition):
            res.events["duplicate"] += 1  # labelled or expired since: the record is history
            return
        res.events["scored"] += 1
        res.sends.append((self.topics.scored, rec.key, self._scored_bytes(
            ev, pending.features, pending.score, pending.decision, pending.model_version,
            rec, pending.scored_at), None))
        if pending.label is not None:  # its example may not have been acknowledged either
            self.joins.send_example(ev.event_id.encode(), pending, res)

    def _score(self, b: _Batch) -> None:
        items = b.items
        if not items:
            return
        try:
            scores = b.champion.score_many([it.values for it in items])
        except Exception:
            scores = []
            for it in items:  # find the record(s) the model cannot score
                try:
                    scores.append(b.champion.score_one(it.values))
                except Exception as exc:
                    scores.append(math.nan)
                    it.failed = Failure("processing_error",
                                        f"model: {type(exc).__name__}: {exc}")
                    b.work[it.event.entity_id].troubled = True
        for it, score in zip(items, scores, strict=True):
            it.score = score

    def _score_in_shadow(self, b: _Batch) -> None:
        """Each shadow scores the events the champion scored, on the same features."""
        if not b.shadows:
            return
        items = [it for it in b.items if it.failed is None]
        rows = [it.values for it in items]
        for shadow in b.shadows:
            try:
                scores: list[float | None] = list(shadow.score_many(rows))
            except Exception:
                scores = [_score_or_none(shadow, row) for row in rows]
                log.warning("shadow %s could not score %d of %d events", shadow.version,
                            scores.count(None), len(rows))
            for it, score in zip(items, scores, strict=True):
                if score is not None:
                    it.shadow_scores[shadow.version] = score
                    b.res.shadow_scores += 1

    def _commit_entity(self, b: _Batch, entity_id: str, ent: EntityWork) -> None:
        """Write the entity's state once for the batch, or settle its trouble event by event."""
        if not ent.applied:
            return
        if not ent.troubled:
            raw = self._entry_bytes(ent)
            if raw is not None and len(raw) <= self.max_entity_bytes:
                self.entities.store(entity_id, ent, raw, b.items[ent.applied[-1]].rec.partition)
                return
        self._commit_one_by_one(b, entity_id, ent)

    def _entry_bytes(self, ent: EntityWork) -> bytes | None:
        try:
            return self.entities.encode(ent)
        except Exception as exc:
            log.error("an entity state does not encode: %r", exc)
            return None

    def _commit_one_by_one(self, b: _Batch, entity_id: str, ent: EntityWork) -> None:
        """The slow path: re-apply the entity's batch events one at a time from the state
        before the batch; an event that cannot be scored or encoded, or that would make the
        state too large, fails alone and leaves the state as it was before it."""
        state = self.entities.restore(ent)
        start = self.entities.entry_at_start(ent)
        ent.latest = start.latest if start is not None else None
        ent.latest_ts_ms = start.latest_ts_ms if start is not None else None
        prev = self.engine.encode_state(state)
        last_raw: bytes | None = None
        last_partition = 0
        for idx in ent.applied:
            item = b.items[idx]
            before = (ent.latest, ent.latest_ts_ms, ent.last_offset)
            try:
                values = self.engine.apply(state, item.event.ts_ms, item.event.attrs)
                score = b.champion.score_one(values)
                ent.last_offset = item.rec.offset
                ent.saw(item.event.ts_ms, values)
                raw = encode(ent.entry(self.engine.encode_state(state)))
            except Exception as exc:
                ent.latest, ent.latest_ts_ms, ent.last_offset = before
                item.failed = Failure("processing_error", f"{type(exc).__name__}: {exc}")
                state = self.engine.decode_state(prev)
                continue
            if len(raw) > self.max_entity_bytes:
                ent.latest, ent.latest_ts_ms, ent.last_offset = before
                item.failed = Failure(
                    "entity_state_limit", f"entity {entity_id[:80]!r}: its state would take "
                    f"{len(raw)} bytes, over state.max_entity_bytes={self.max_entity_bytes}")
                state = self.engine.decode_state(prev)
                continue
            item.values, item.score, item.failed = values, score, None
            prev, last_raw, last_partition = self.engine.encode_state(state), raw, \
                item.rec.partition
        ent.state = state
        if last_raw is not None:
            self.entities.store(entity_id, ent, last_raw, last_partition)
        else:
            self.entities.uncache(entity_id)

    def _emit(self, b: _Batch, item: _Item) -> None:
        ev, rec, res = item.event, item.rec, b.res
        decision = b.champion.decision(item.score)
        version = b.champion.version
        res.sends.append((self.topics.scored, rec.key, self._scored_bytes(
            ev, item.values, item.score, decision, version, rec, b.now_ms), None))
        res.events["scored"] += 1
        res.scored_produce_ms.append(rec.timestamp_ms)
        res.newest_event_ms = max(res.newest_event_ms or ev.ts_ms, ev.ts_ms)
        res.observations.append(ScoredObservation(item.values, item.score, decision,
                                                  item.groups))
        pending = Pending(entity_id=ev.entity_id, ts_ms=ev.ts_ms, partition=rec.partition,
                          offset=rec.offset, features=item.values, score=item.score,
                          decision=decision, model_version=version, groups=item.groups,
                          scored_at=b.now_ms, shadow_scores=item.shadow_scores)
        key = ev.event_id.encode()
        if item.prior is not None and item.prior.label is not None:
            pending.labelled, pending.label = True, item.prior.label
            self.joins.send_example(key, pending, res)  # again: the first may not have landed
        else:
            held = self.joins.take_held(key, rec.partition)
            if held is not None:
                self.joins.join(key, pending, held, res)
        self.tables.pending.put(key, encode(pending), rec.partition)
        self.expiry.pending_index.push(rec.partition, self.expiry.pending_due_ms(ev.ts_ms), key)

    def _scored_bytes(self, ev: ValidEvent, values: dict[str, Any], score: float,
                      decision: int, version: str, rec: InRecord, scored_at: int) -> bytes:
        return scored_record_bytes(ev.event_id, ev.entity_id, ev.ts_ms, ev.group, values,
                                   score, decision, version, self.feature_set,
                                   (rec.topic, rec.partition, rec.offset), scored_at)


def _score_or_none(model: Champion, row: dict[str, Any]) -> float | None:
    try:
        return model.score_one(row)
    except Exception:
        return None
