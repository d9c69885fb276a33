"""Batches that never wait for nothing.

faust-streaming's ``Stream.take_events(max, within)`` waits ``within`` seconds for the
buffer to fill unless ``max`` records came first: an isolated event waited the whole 50 ms
before it was scored. :func:`take_batches` has the same shape (a processor fills a buffer
while the stream is drained passively, acks are manual) with a different rule for when a
batch is done, :class:`AdaptiveBatching`:

- a batch starts with the first record after the previous batch, and takes at once every
  record already fetched (the stream is drained, without waiting on the network, until the
  buffer stops growing);
- it then waits for more (until ``max_records`` are in hand or ``max_wait_seconds`` since
  its first record) only while records arrive faster than they are processed: the share
  of the time spent processing rather than waiting for a first record (an exponentially
  weighted mean over batches, arrival rate over service rate) is at least
  ``saturation``. Below it there is idle time to spare, and waiting would only add
  latency; above it, a backlog builds and larger batches cost less per record.

Unlike ``take_events``, records keep filling the next batch's buffer while a batch is
processed (up to ``max_records``), and a batch's events are acknowledged only when the
consumer comes back for the next one, never when the agent fails mid-batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

#: The bounds of a batch: this many records, or what arrived within this many seconds.
BATCH_MAX_RECORDS = 1000
BATCH_WITHIN_SECONDS = 0.05
#: Busy share above which records count as arriving faster than they are processed.
SATURATION = 0.9
#: How many turns of the event loop the drain gives the stream to hand over one more
#: record already fetched before the batch counts as complete.
DRAIN_TURNS = 4


class AdaptiveBatching:
    """When a batch stops collecting (see the module docstring).

    >>> policy = AdaptiveBatching()
    >>> policy.wait_seconds(buffered=1, waited_seconds=0.0)  # idle so far: process now
    0.0
    >>> for _ in range(20):  # always a backlog: no time spent waiting for a first record
    ...     policy.observe(busy_seconds=0.01, idle_seconds=0.0)
    >>> policy.saturated, round(policy.wait_seconds(buffered=10, waited_seconds=0.02), 3)
    (True, 0.03)
    >>> policy.wait_seconds(buffered=1000, waited_seconds=0.0)
    0.0
    """

    def __init__(self, max_records: int = BATCH_MAX_RECORDS,
                 max_wait_seconds: float = BATCH_WITHIN_SECONDS,
                 saturation: float = SATURATION, smoothing: float = 0.2) -> None:
        if not 0.0 < saturation <= 1.0 or not 0.0 < smoothing <= 1.0:
            raise ValueError("saturation and smoothing are in (0, 1]")
        self.max_records = max_records
        self.max_wait_seconds = max_wait_seconds
        self.saturation = saturation
        self.smoothing = smoothing
        #: The busy share: processing time over processing plus idle time, smoothed.
        self.busy_share = 0.0

    def observe(self, *, busy_seconds: float, idle_seconds: float) -> None:
        """One batch processed in ``busy_seconds``, after ``idle_seconds`` spent waiting for
        its first record (0 when records were already waiting)."""
        total = busy_seconds + idle_seconds
        share = busy_seconds / total if total > 0 else 1.0
        self.busy_share += self.smoothing * (share - self.busy_share)

    @property
    def saturated(self) -> bool:
        return self.busy_share >= self.saturation

    def wait_seconds(self, *, buffered: int, waited_seconds: float) -> float:
        """How much longer to wait for more records before processing ``buffered``."""
        if buffered >= self.max_records or not self.saturated:
            return 0.0
        return max(self.max_wait_seconds - waited_seconds, 0.0)


async def take_batches(stream: Any, policy: AdaptiveBatching,
                       clock: Callable[[], float] = time.monotonic
                       ) -> AsyncIterator[tuple[list[Any], float]]:
    """Yield ``(events, waited_seconds)``: a Faust stream's events batched by ``policy``,
    and how long the batch waited for more after its first record was in hand. Each batch
    is acked when the loop comes back for the next."""
    events: list[Any] = []
    arrived, full, room = asyncio.Event(), asyncio.Event(), asyncio.Event()
    room.set()
    limit = policy.max_records

    async def add_to_buffer(value: Any) -> Any:
        while len(events) >= limit:  # at most one batch ahead of the one processed
            room.clear()
            await stream.wait(room)
            if stream.should_stop:
                return value
        event = stream.current_event
        if event is None:
            raise RuntimeError("a record reached the batch buffer without its event")
        events.append(event)
        arrived.set()
        if len(events) >= limit:
            full.set()
        return value

    enable_acks, stream.enable_acks = stream.enable_acks, False  # acked here, once processed
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            idle_from = clock()
            if not events and await stream.wait_for_stopped(arrived):
                break
            first_at = clock()
            idle = first_at - idle_from
            await _drain(events, limit)
            wait = policy.wait_seconds(buffered=len(events), waited_seconds=clock() - first_at)
            if wait > 0 and await stream.wait_for_stopped(full, timeout=wait):
                break
            batch = events[:limit]
            del events[:limit]
            if not events:
                arrived.clear()
            full.clear()
            room.set()
            started = clock()
            yield batch, started - first_at
            policy.observe(busy_seconds=clock() - started, idle_seconds=idle)
            for event in batch:
                await stream.ack(event)
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)


async def _drain(events: list[Any], limit: int) -> None:
    """Let the stream hand over the records it has already fetched."""
    quiet = 0
    while quiet < DRAIN_TURNS and len(events) < limit:
        before = len(events)
        await asyncio.sleep(0)
        quiet = quiet + 1 if len(events) == before else 0
