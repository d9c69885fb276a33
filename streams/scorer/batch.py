"""One batch's input records and everything its processing produced, before it is final.

The scorer processes a batch of input records in memory and returns a :class:`BatchResult`:
the records to produce (scored, dead letters, training examples), the changelog writes of
its tables, and the outcome counts. The shell produces them in two steps, each without
awaiting each send: first the records, pending predictions and held labels
(``sends``, ``changelog``); once all of those are accepted, the entity states and
partition positions (``progress``), which say that an event was applied. Then it applies
the counts (:meth:`BatchResult.count_into`) and lets Faust acknowledge the input offsets.
So a counter never counts a record whose outcome could still change, and a crash can
never leave an entity's state past an event whose scored record and pending prediction
were lost: after it, the event is applied again to the state before it.
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


@dataclass
class BatchResult:
    sends: list[Send] = field(default_factory=list)
    changelog: list[ChangelogRecord] = field(default_factory=list)
    #: Entity states and partition positions: written only after everything else landed.
    progress: list[ChangelogRecord] = field(default_factory=list)
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
