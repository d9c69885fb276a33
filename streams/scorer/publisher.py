"""Publishing one batch: the two-step publish, the one place its order is decided.

:class:`TwoStepPublisher` produces a :class:`~streams.scorer.batch.BatchResult` in this
order, each step handed to the producer at once and awaited once, retried until every
record of the step is accepted:

1. the outputs (scored records, dead letters, training examples) and the changelog writes
   of the ``pending`` predictions and ``held`` labels;
2. once all of those landed, the changelog writes of the ``entities`` states and the
   ``partitions`` positions, which say that an event was applied.

After each step, ``on_landed`` is told the highest offset the broker acknowledged per
topic-partition (the base offset of the last producer batch there: never past a record
that landed), so tables on disk write what landed with the changelog offset it landed at
(:meth:`streams.scorer.tables.Tables.commit`). Only then does the caller count the batch's
outcomes and let Faust acknowledge its input offsets. A crash between the two steps
leaves no entity state past an event whose scored record and pending prediction were
lost: the redelivered event is applied again to the state before it. A table not named in
either step is refused (a new table must be placed).

:class:`ProducerSender` is the real sender (the app's aiokafka producer, one producer
batch per topic-partition); tests pass their own :class:`Sender`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from streams.scorer.batch import BatchResult

log = logging.getLogger(__name__)

#: (topic, key, value or None for a tombstone, partition or None for the key's partition)
OutRecord = tuple[str, bytes | None, bytes | None, int | None]
#: Tables whose changelog goes with the outputs, and those that go only after them.
FIRST_TABLES = ("pending", "held")
THEN_TABLES = ("entities", "partitions")
#: Backoff between attempts to deliver a step's records while the broker refuses them.
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 0.5, 10.0


#: (topic, partition) -> an offset at or below the last record acknowledged there.
Acked = dict[tuple[str, int], int]


class Sender(Protocol):
    async def send_all(self, records: list[OutRecord]) -> list[tuple[OutRecord, BaseException]]:
        """Send every record; return those refused, with why."""


def _acked(sender: Sender) -> Acked:
    """What the sender's last ``send_all`` saw acknowledged (empty for a sender that does
    not say)."""
    return dict(getattr(sender, "acked", {}))


def steps(res: BatchResult) -> tuple[list[OutRecord], list[OutRecord]]:
    """The batch's records in their two steps (see the module docstring).

    >>> res = BatchResult(sends=[("scored", b"k", b"v", None)],
    ...                   writes={"entities": [("cl-e", b"u", b"s", 0)],
    ...                           "pending": [("cl-p", b"e", b"p", 0)]})
    >>> first, then = steps(res)
    >>> [r[0] for r in first], [r[0] for r in then]
    (['scored', 'cl-p'], ['cl-e'])
    """
    unplaced = set(res.writes) - set(FIRST_TABLES) - set(THEN_TABLES)
    if unplaced:
        raise ValueError(f"tables {sorted(unplaced)} have no step in the two-step publish")
    first: list[OutRecord] = list(res.sends)
    for name in FIRST_TABLES:
        first.extend(res.writes.get(name, ()))
    then: list[OutRecord] = []
    for name in THEN_TABLES:
        then.extend(res.writes.get(name, ()))
    return first, then


class TwoStepPublisher:
    """Publishes a batch in its two steps (see the module docstring)."""

    def __init__(self, sender: Sender, on_refused: Callable[[str], None] = lambda topic: None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 on_landed: Callable[[Acked], None] = lambda acked: None) -> None:
        self.sender = sender
        self.on_landed = on_landed
        #: Called per refused record with its topic (the produce-error counter: it must
        #: rise while a batch still retries, so it cannot wait for the batch's counts).
        self.on_refused = on_refused
        self.sleep = sleep

    async def publish(self, res: BatchResult) -> None:
        first, then = steps(res)
        self.on_landed(await self._until_accepted(first))
        self.on_landed(await self._until_accepted(then))

    async def _until_accepted(self, records: list[OutRecord]) -> Acked:
        delay = RETRY_FIRST_SECONDS
        acked: Acked = {}
        while records:
            failed = await self.sender.send_all(records)
            for tp, offset in _acked(self.sender).items():
                acked[tp] = max(offset, acked.get(tp, offset))
            if not failed:
                break
            for record, _ in failed:
                self.on_refused(record[0])
            # Nothing is acknowledged until every record is accepted: retry only what
            # failed (one write per key per batch, so order within a key is kept).
            log.error("%d of %d records not accepted (%r); retrying in %.1f s",
                      len(failed), len(records), failed[0][1], delay)
            records = [r for r, _ in failed]
            await self.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
        return acked


async def _send_closed(aio: Any, batch: Any, topic: str, partition: int) -> Any:
    """Hand a complete producer batch to aiokafka, closed: an open batch waits out the
    producer's linger (5 ms) for records that will never join it, twice per published
    batch (each step's acknowledgement is awaited before the next is sent)."""
    batch.close()
    return await aio.send_batch(batch, topic, partition=partition)


class ProducerSender:
    """Sends through a Faust app's aiokafka producer, grouped into one producer batch per
    topic-partition (a send per record cost two awaits and a future each), each sent as
    soon as it is complete (no linger)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        #: What the last send_all saw acknowledged (see :data:`Acked`).
        self.acked: Acked = {}

    async def send_all(self, records: list[OutRecord]) -> list[tuple[OutRecord, BaseException]]:
        aio = self.app.producer._ensure_producer()  # the app's aiokafka producer
        by_partition: dict[tuple[str, int], list[int]] = {}
        for topic in {r[0] for r in records}:
            await aio.client._wait_on_metadata(topic)
        for i, (topic, key, value, partition) in enumerate(records):
            if partition is None:  # the key's partition, by the producer's own partitioner
                partition = aio._partition(topic, None, None, None, key, value)
            by_partition.setdefault((topic, partition), []).append(i)
        futures: list[tuple[Any, list[int]]] = []
        for (topic, partition), members in by_partition.items():
            batch, held = aio.create_batch(), []
            for i in members:
                key, value = records[i][1], records[i][2]
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    held.append(i)
                    continue
                if held:  # the batch is full: send it, start the next one
                    futures.append((await _send_closed(aio, batch, topic, partition), held))
                    batch, held = aio.create_batch(), []
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    held.append(i)
                else:  # larger than a batch on its own
                    futures.append((await aio.send(topic, value, key=key, partition=partition),
                                    [i]))
            if held:
                futures.append((await _send_closed(aio, batch, topic, partition), held))
        results = await asyncio.gather(*(f for f, _ in futures), return_exceptions=True)
        failed = []
        self.acked = {}
        for (_, members), result in zip(futures, results, strict=True):
            if isinstance(result, BaseException):
                failed.extend((records[i], result) for i in members)
            else:  # RecordMetadata: a producer batch's base offset
                tp = (result.topic, result.partition)
                self.acked[tp] = max(result.offset, self.acked.get(tp, result.offset))
        return failed
