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
  its first record) only while records arrive faster than they are processed: the rate at
  which records reach the buffer (per second of wall time, smoothed over batches) is at
  least ``saturation`` times the rate the scorer processes them (records per second of the
  process's CPU time, smoothed). Below it the scorer has CPU to spare, and waiting would
  only add latency.

Why CPU time and not how busy the batch loop is: a batch spends most of its wall time
awaiting the broker's acknowledgements, and records keep arriving meanwhile, so a scorer
at 200 events/s is "busy" nearly all the time (a new batch is always in hand when the last
is published) while using a fraction of its CPU. Counting that as saturation made every
batch wait the whole 50 ms at 200 events/s. When the process is starved of CPU by others
(its wall capacity below its CPU capacity) the rule sees saturation late; the buffer then
fills up to ``max_records`` without any timed wait, which is what a backlog needs.

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
#: Arrival rate over processing rate above which records count as arriving faster than
#: they are processed.
SATURATION = 0.9
#: How many turns of the event loop the drain gives the stream to hand over one more
#: record already fetched before the batch counts as complete. Fewer is not only a
#: latency choice: with 1 (or with the drain ended at the first quiet turn once the
#: stream's channel queue was empty), the throughput step (10,000 events waiting) had
#: faust's stream skip whole ranges of 1,000 offsets per partition in 3 runs of 3 (4,297
#: to 7,280 read back by the gap reader, a quarter of the throughput), none with 4 in the
#: runs alternated with them. The cause inside faust-streaming is not found.
DRAIN_TURNS = 4
#: Shorter measured times count as this long.
RESOLUTION_SECONDS = 1e-6


class AdaptiveBatching:
    """When a batch stops collecting (see the module docstring).

    >>> policy = AdaptiveBatching()
    >>> policy.wait_seconds(buffered=1, waited_seconds=0.0)  # nothing known: process now
    0.0
    >>> for _ in range(20):  # 200 records/s arrive; 3 take 1.5 ms of CPU (2,000 per s)
    ...     policy.observe(records=3, cpu_seconds=0.0015, arrived=3, elapsed_seconds=0.015)
    >>> policy.saturated
    False
    >>> for _ in range(20):  # 4,000 records/s arrive: more than 2,000 per CPU second
    ...     policy.observe(records=1000, cpu_seconds=0.5, arrived=2000, elapsed_seconds=0.5)
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
        #: Records reaching the buffer per second of wall time, smoothed.
        self.arrival_rate = 0.0
        #: Records processed per second of the process's CPU time, smoothed (None until
        #: a batch has used measurable CPU).
        self.service_rate: float | None = None

    def observe(self, *, records: int, cpu_seconds: float, arrived: int,
                elapsed_seconds: float) -> None:
        """A batch of ``records`` processed (and published) using ``cpu_seconds`` of the
        process's CPU; ``arrived`` records reached the buffer over the ``elapsed_seconds``
        of wall time since the previous batch started."""
        a = self.smoothing
        if elapsed_seconds > 0:  # a microsecond at least: the rates stay finite
            self.arrival_rate += a * (arrived / max(elapsed_seconds, RESOLUTION_SECONDS)
                                      - self.arrival_rate)
        if cpu_seconds > 0 and records > 0:
            rate = records / max(cpu_seconds, RESOLUTION_SECONDS)
            self.service_rate = rate if self.service_rate is None else \
                self.service_rate + a * (rate - self.service_rate)

    @property
    def saturated(self) -> bool:
        """Records arrive faster than they are processed (see the module docstring)."""
        return self.service_rate is not None and \
            self.arrival_rate >= self.saturation * self.service_rate

    def wait_seconds(self, *, buffered: int, waited_seconds: float) -> float:
        """How much longer to wait for more records before processing ``buffered``."""
        if buffered >= self.max_records or not self.saturated:
            return 0.0
        return max(self.max_wait_seconds - waited_seconds, 0.0)


async def take_batches(stream: Any, policy: AdaptiveBatching,
                       clock: Callable[[], float] = time.monotonic,
                       cpu_clock: Callable[[], float] = time.process_time
                       ) -> AsyncIterator[tuple[list[Any], float]]:
    """Yield ``(events, waited_seconds)``: a Faust stream's events batched by ``policy``,
    and how long the batch waited for more after its first record was in hand. Each batch
    is acked when the loop comes back for the next."""
    events: list[Any] = []
    arrivals = [0]  # records that reached the buffer so far
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
        arrivals[0] += 1
        arrived.set()
        if len(events) >= limit:
            full.set()
        return value

    enable_acks, stream.enable_acks = stream.enable_acks, False  # acked here, once processed
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    last_start, last_arrivals = clock(), 0
    try:
        while not stream.should_stop:
            if not events and await stream.wait_for_stopped(arrived):
                break
            first_at = clock()
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
            started, cpu_started = clock(), cpu_clock()
            cycle, came = started - last_start, arrivals[0] - last_arrivals
            last_start, last_arrivals = started, arrivals[0]
            yield batch, started - first_at
            policy.observe(records=len(batch), cpu_seconds=cpu_clock() - cpu_started,
                           arrived=came, elapsed_seconds=cycle)
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
