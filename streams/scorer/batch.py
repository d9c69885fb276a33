"""One batch's input records and everything its processing produced, before it is final.

The scorer processes a batch of input records in memory and returns a :class:`BatchResult`:
the records to produce (scored, dead letters, training examples), the changelog writes of
its tables by table (``writes``), every count the batch makes, and the model version that
scored its events. :class:`~streams.scorer.publisher.StepPublisher` produces them in
the order that keeps a crash harmless (its docstring states it); only then are the counts
applied (:meth:`BatchResult.count_into`) and the input offsets acknowledged. So a counter
never counts a record whose outcome could still change.

>>> res = BatchResult(model_version="v1")
>>> res.events["scored"] += 2
>>> res.decode_errors["pending"] += 1
>>> sorted(res.events.items()), res.model_version
([('scored', 2)], 'v1')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from monitors.metrics import Metrics
from streams.records import dead_letter_bytes
from streams.scorer.tables import ChangelogRecord


@dataclass(slots=True)
class InRecord:
    """An input record as the consumer delivered it."""

    raw: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int
    #: The Kafka record's timestamp (produce time), epoch ms.
    timestamp_ms: int

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


#: (topic, key, value, partition or None for the key's default partition)
Send = tuple[str, bytes | None, bytes, int | None]


@dataclass
class ScoredObservation:
    """What the monitors see of one scored event (fed to them per batch)."""

    features: dict[str, Any]
    score: float
    decision: int
    groups: dict[str, str | None]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one accepted event cannot be scored: a dead-letter reason and its detail."""

    reason: str
    detail: str


@dataclass
class BatchResult:
    sends: list[Send] = field(default_factory=list)
    #: The tables' changelog records, by table name (the publisher orders them).
    writes: dict[str, list[ChangelogRecord]] = field(default_factory=dict)
    #: The champion version that scored this batch's events (None: no events scored).
    model_version: str | None = None
    #: Input records of an events batch (None for labels and expiry), for the batch-size
    #: histogram.
    batch_records: int | None = None
    #: How long the input batch waited for more records after its first was in hand.
    batch_wait_seconds: float | None = None
    events: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    redeliveries: int = 0
    #: Kafka timestamps (ms) of the records whose scored record this batch sends.
    scored_produce_ms: list[int] = field(default_factory=list)
    observations: list[ScoredObservation] = field(default_factory=list)
    newest_event_ms: int | None = None
    newest_label_ms: int | None = None
    examples: int = 0
    #: (score, decision, label, model version) of each example sent: the scorer's check of
    #: its performance estimate against what labels realise.
    labelled: list[tuple[float, int, int, str]] = field(default_factory=list)
    #: Input records the consumer had skipped, read back and processed in this batch.
    skipped_offsets: int = 0
    #: Scored events that stopped waiting for a label: their TTL passed / over the cap.
    predictions_expired: int = 0
    predictions_evicted: int = 0
    #: Scores given by versions in shadow (one per event per shadow).
    shadow_scores: int = 0
    #: Table values that did not decode (treated as absent), by table.
    decode_errors: Counter[str] = field(default_factory=Counter)

    def changelog(self) -> list[ChangelogRecord]:
        """Every changelog record of the batch, whatever its table."""
        return [r for records in self.writes.values() for r in records]

    def dead_letter(self, dlq_topic: str, rec: InRecord, reason: str, detail: str,
                    now_ms: int, max_bytes: int, input_kind: str = "event") -> None:
        self.sends.append((dlq_topic, rec.key, dead_letter_bytes(
            rec.raw, reason, detail, rec.source, now_ms, max_bytes, input_kind), None))
        self.rejections[reason] += 1

    def count_into(self, metrics: Metrics) -> None:
        """Apply the outcome counts: call once the batch's sends were all accepted."""
        for outcome, n in self.events.items():
            metrics.events.labels(outcome=outcome).inc(n)
        for outcome, n in self.labels.items():
            metrics.labels.labels(outcome=outcome).inc(n)
        for reason, n in self.rejections.items():
            metrics.rejections.labels(reason=reason).inc(n)
        if self.redeliveries:
            metrics.redeliveries.inc(self.redeliveries)
        if self.examples:
            metrics.training_examples.inc(self.examples)
        if self.batch_records is not None:
            metrics.batch_records.observe(self.batch_records)
        if self.batch_wait_seconds is not None:
            metrics.batch_wait.observe(self.batch_wait_seconds)
        for name, n in (("skipped_offsets", self.skipped_offsets),
                        ("shadow_scores", self.shadow_scores),
                        ("predictions_expired", self.predictions_expired),
                        ("predictions_evicted", self.predictions_evicted)):
            if n:
                getattr(metrics, name).inc(n)
        for table, n in self.decode_errors.items():
            metrics.state_decode_errors.labels(table=table).inc(n)
