"""One batch at a time: process, publish, then count.

Batches of every agent (events, labels) and timer (tail read-back, expiry) take turns
under one lock, so the tables change under one of them at a time. The result of a batch
carries the model version that scored it; the counts and monitors are fed from the result
once it is published (:mod:`streams.scorer.observe`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from streams.scorer.batch import BatchResult
from streams.scorer.observe import ScorerMetrics
from streams.scorer.publisher import StepPublisher


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class BatchRunner:
    """Runs ``process(now_ms)`` and publishes its result, one batch at a time."""

    def __init__(self, publisher: StepPublisher, observer: ScorerMetrics,
                 clock_ms: Callable[[], int] = now_ms,
                 clock_s: Callable[[], float] = time.time) -> None:
        self.publisher = publisher
        self.observer = observer
        self.clock_ms = clock_ms
        self.clock_s = clock_s
        self._turn = asyncio.Lock()

    async def run(self, process: Callable[[int], BatchResult], *, skipped_offsets: int = 0,
                  batch_wait_seconds: float | None = None) -> BatchResult:
        """``skipped_offsets``: records of the batch read back after the consumer skipped
        them; ``batch_wait_seconds``: how long the batch waited for more records after its
        first (both counted with the batch)."""
        async with self._turn:
            res = process(self.clock_ms())
            res.skipped_offsets += skipped_offsets
            res.batch_wait_seconds = batch_wait_seconds
            await self.publisher.publish(res)
        self.observer.batch_published(res, self.clock_s())
        return res
