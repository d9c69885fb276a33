"""One input topic's batches, from the stream to the batch runner.

For each batch the stream hands over (events or labels, :func:`~.batching.take_batches`):
the events wait for the champion (never scored with a model that is not it); the batch's
partitions count as having delivered (the tail check's idle clock,
:class:`~.timers.PartitionActivity`); records the consumer skipped before them are put
back in place (:class:`~.readback.GapRepair`); then the batch runs, one at a time with the
others (:class:`~.runner.BatchRunner`), with the count of records put back and how long it
waited for more after its first.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from streams.scorer.batch import BatchResult, InRecord
from streams.scorer.readback import GapRepair
from streams.scorer.runner import BatchRunner, now_ms
from streams.scorer.timers import PartitionActivity


def in_record(message: Any) -> InRecord:
    """What the processor needs of a Faust message (its timestamp is in seconds)."""
    stamp = message.timestamp
    return InRecord(message.value or b"", message.key, message.topic, message.partition,
                    message.offset, int(stamp * 1000) if stamp else now_ms())


class Intake:
    """Takes one topic's batches to ``process`` (``labels``: the labels topic).

    ``champion_loaded``: set once the champion is known; the events topic waits for it.
    """

    def __init__(self, topic: str, *, labels: bool,
                 process: Callable[[list[InRecord], int], BatchResult],
                 activity: PartitionActivity, repair: GapRepair, runner: BatchRunner,
                 champion_loaded: asyncio.Event | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.topic = topic
        self.labels = labels
        self.process = process
        self.activity = activity
        self.repair = repair
        self.runner = runner
        self.champion_loaded = champion_loaded
        self.clock = clock

    async def take(self, batches: AsyncIterator[tuple[list[Any], float]]) -> None:
        """Run every batch of ``(events, waited_seconds)`` (Faust events: ``.message``)."""
        async for events, waited in batches:
            await self.batch([in_record(e.message) for e in events], waited)

    async def batch(self, records: list[InRecord], waited: float | None = None) -> BatchResult:
        if self.champion_loaded is not None:
            await self.champion_loaded.wait()
        self.activity.delivered(self.topic, {r.partition for r in records}, self.clock())
        records, skipped = await self.repair.fill(records, labels=self.labels)
        return await self.runner.run(functools.partial(self.process, records),
                                     skipped_offsets=skipped, batch_wait_seconds=waited)
