"""Publishing one batch: the publish in steps, the one place their order is decided.

:class:`StepPublisher` produces a :class:`~streams.scorer.batch.BatchResult` in this
order, each step handed to the producer at once and awaited once, retried until every
record of the step is accepted, and the next step sent only then:

1. the outputs (scored records, dead letters, training examples) and the changelog writes
   of the ``pending`` predictions and ``held`` labels;
2. the changelog writes of the ``entities`` states, which say that an event was applied;
3. the changelog writes of the ``partitions`` positions (the next offset due and the
   watermark of each input partition).

The rule behind the order: nothing says an event was applied before what it produced
landed, and a position never lands before every state write of the records before it.
A crash after step 1 leaves no entity state past an event whose scored record and pending
prediction were lost: the redelivered event is applied again to the state before it. A
crash after step 2 leaves positions behind the states: a redelivered event is recognised
by its entity's last offset. Positions ahead of the states (what sending steps 2 and 3
together allowed when the broker took one and refused the other) would tell the next owner
that records were applied whose states it does not have: its tail check read the records
after that position and scored them against states missing the batch's events, and the
redelivered batch was then taken for already applied.

After each step, ``on_landed`` is told the highest offset the broker acknowledged per
topic-partition (the base offset of the last producer batch there: never past a record
that landed), so tables on disk write what landed with the changelog offset it landed at
(:meth:`streams.scorer.tables.Tables.commit`), in the same order. Only then does the
caller count the batch's outcomes and let Faust acknowledge its input offsets. A table not
named in a step is refused (a new table must be placed).

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
#: The tables whose changelog goes in each step: with the outputs, then alone in order.
TABLE_STEPS: tuple[tuple[str, ...], ...] = (("pending", "held"), ("entities",),
                                            ("partitions",))
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


def steps(res: BatchResult) -> list[list[OutRecord]]:
    """The batch's records in their steps (see the module docstring).

    >>> res = BatchResult(sends=[("scored", b"k", b"v", None)],
    ...                   writes={"entities": [("cl-e", b"u", b"s", 0)],
    ...                           "partitions": [("cl-q", b"p", b"n", 0)],
    ...                           "pending": [("cl-p", b"e", b"p", 0)]})
    >>> [[r[0] for r in step] for step in steps(res)]
    [['scored', 'cl-p'], ['cl-e'], ['cl-q']]
    """
    unplaced = set(res.writes) - {name for step in TABLE_STEPS for name in step}
    if unplaced:
        raise ValueError(f"tables {sorted(unplaced)} have no step in the publish")
    out: list[list[OutRecord]] = []
    for i, names in enumerate(TABLE_STEPS):
        step: list[OutRecord] = list(res.sends) if i == 0 else []
        for name in names:
            step.extend(res.writes.get(name, ()))
        out.append(step)
    return out


class StepPublisher:
    """Publishes a batch in its steps, each once the one before landed (see the module
    docstring)."""

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
        for step in steps(res):
            if step:
                self.on_landed(await self._until_accepted(step))

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
