"""The scorer's timers, apart from Faust: the tail check and the expiry round.

- :class:`TailCheck`: records skipped at the end of an idle partition have no later record
  to reveal them; every ``TAIL_CHECK_SECONDS`` each assigned input partition idle for
  ``IDLE_SECONDS`` has the stream consumer's position (the offset it fetches next: every
  record before it was handed to the stream) compared with the next offset due
  (:mod:`.readback`). Not the partition's end: a partition behind a backlog is idle too
  while faust serves the others, and its records are still to come from the stream.
- :class:`ExpiryRound`: every ``EXPIRY_SECONDS`` scored events and held labels past their
  label TTL are forgotten (a batch of its own), then the table-size and lag gauges are set.

Neither acts while the tables are being recovered (``recovering``: a rebalance or a
recovery in progress). The tables are then partly restored, and Faust's recovery writes
the same databases from the changelog: a batch run then would read positions ahead of
the entity states (or the reverse) and its writes could be overwritten by older changelog
records. A partition stays in the stream's hands while it recovers: its idle time counts
from the recovery's end, so the tail check does not race the stream's first fetch.

Both see the consumer through a :class:`Consumer` (assignment, positions and high
watermarks), so tests drive them without a broker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from streams.scorer.batch import BatchResult, InRecord
from streams.scorer.observe import ScorerMetrics
from streams.scorer.readback import GapRepair
from streams.scorer.runner import BatchRunner

log = logging.getLogger(__name__)

#: How often the tail check runs, and how long a partition must have delivered nothing
#: before records below the stream consumer's position count as skipped. Records handed
#: to faust reach the agent once its buffers drain (faust's stream buffer, 4,096 records,
#: and one batch ahead: about 2.5 s at 2,000 events/s); one read back while still queued
#: is delivered again, a repeat (at-least-once), never a loss. Seen on the real broker: a
#: scorer taking over a killed one's partitions, faust skipped the records produced
#: meanwhile (its position past them) in 3 of 4 runs; with the check at 5 s and 10 s idle
#: they were read back ~10 s after the takeover (19.2-19.6 s from the kill).
TAIL_CHECK_SECONDS = 2.0
IDLE_SECONDS = 5.0
#: At most this many records are read back from one partition's tail per check, one batch
#: of the stream's own size: when the tail was read up to the partition's end, a partition
#: behind a large backlog looked skipped, and reading its whole tail at once held 100,000
#: records and the event loop for about 30 s (1,000,000-entity benchmark, RSS 350 → 1,087
#: MiB). The rest follows at the next checks.
TAIL_BATCH_RECORDS = 1_000
EXPIRY_SECONDS = 2.0


class Consumer(Protocol):
    def assignment(self) -> set[Any]:
        """TopicPartitions (``.topic``, ``.partition``) held now."""

    def highwater(self, tp: Any) -> int | None: ...

    def position(self, tp: Any) -> int | None:
        """The offset the stream consumer fetches next on ``tp`` (None: not known now)."""


class ScoringProcessor(Protocol):
    def process_events(self, records: list[InRecord], now_ms: int) -> BatchResult: ...

    def process_labels(self, records: list[InRecord], now_ms: int) -> BatchResult: ...

    def expire(self, partitions: list[int]) -> BatchResult: ...

    def next_offset(self, partition: int, *, labels: bool = False) -> int: ...


def never_crash(timer: Any) -> Any:
    """A timer body whose errors are logged, not raised: Faust crashes the whole app when a
    timer raises."""

    @functools.wraps(timer)
    async def guarded() -> None:
        try:
            await timer()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("timer %s failed; it runs again at its next interval",
                          timer.__name__)

    return guarded


class PartitionActivity:
    """When each assigned input partition last delivered a record (or was assigned).

    >>> seen = PartitionActivity()
    >>> seen.assigned("events", [0, 1], now=100.0)
    >>> seen.delivered("events", [1], now=108.0)
    >>> seen.idle("events", 0, now=111.0, idle_seconds=10), seen.idle("events", 1, 111.0, 10)
    (True, False)
    """

    def __init__(self) -> None:
        self._last: dict[str, dict[int, float]] = {}

    def assigned(self, topic: str, partitions: Iterable[int], now: float) -> None:
        """The partitions of ``topic`` now held (the others are forgotten)."""
        held = set(partitions)
        self._last[topic] = {p: now for p in held}

    def delivered(self, topic: str, partitions: Iterable[int], now: float) -> None:
        seen = self._last.setdefault(topic, {})
        for p in partitions:
            seen[p] = now

    def idle(self, topic: str, partition: int, now: float, idle_seconds: float) -> bool:
        return now - self._last.get(topic, {}).get(partition, now) >= idle_seconds


class TailCheck:
    def __init__(self, consumer: Consumer, activity: PartitionActivity, repair: GapRepair,
                 runner: BatchRunner, processor: ScoringProcessor, events_topic: str,
                 labels_topic: str, idle_seconds: float = IDLE_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 recovering: Callable[[], bool] = lambda: False) -> None:
        self.consumer = consumer
        self.activity = activity
        self.repair = repair
        self.runner = runner
        self.processor = processor
        self.topics = {events_topic: False, labels_topic: True}  # topic -> labels?
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.recovering = recovering

    async def check(self) -> None:
        now = self.clock()
        if self.recovering():
            for topic in self.topics:  # idle from the recovery's end, not before
                self.activity.delivered(topic, (tp.partition for tp in self.consumer.assignment()
                                                if tp.topic == topic), now)
            return
        for tp in list(self.consumer.assignment()):
            labels = self.topics.get(tp.topic)
            if labels is None or not self.activity.idle(tp.topic, tp.partition, now,
                                                         self.idle_seconds):
                continue
            fetched = self.consumer.position(tp)
            if fetched is None:
                continue
            records = await self.repair.tail(tp.topic, tp.partition, fetched, labels=labels,
                                             limit=TAIL_BATCH_RECORDS)
            if records and tp in self.consumer.assignment():
                process = self.processor.process_labels if labels \
                    else self.processor.process_events
                await self.runner.run(functools.partial(process, records),
                                      skipped_offsets=len(records))


class ExpiryRound:
    def __init__(self, consumer: Consumer, processor: ScoringProcessor, runner: BatchRunner,
                 observer: ScorerMetrics, events_topic: str,
                 table_sizes: Callable[[], tuple[int, int]],
                 recovering: Callable[[], bool] = lambda: False) -> None:
        self.consumer = consumer
        self.processor = processor
        self.runner = runner
        self.observer = observer
        self.events_topic = events_topic
        #: (pending predictions, held labels) in the tables now.
        self.table_sizes = table_sizes
        self.recovering = recovering

    async def tick(self) -> None:
        if self.recovering():
            return
        events = [tp for tp in self.consumer.assignment() if tp.topic == self.events_topic]
        partitions = [tp.partition for tp in events]
        await self.runner.run(lambda now_ms: self.processor.expire(partitions))
        self.observer.table_sizes(*self.table_sizes())
        for tp in self.consumer.assignment():  # as it is now, after the batch's await
            if tp.topic != self.events_topic:
                continue
            highwater = self.consumer.highwater(tp)
            if highwater is not None:  # None until the first fetch of the partition
                self.observer.lag(tp.partition,
                                  highwater - self.processor.next_offset(tp.partition))
