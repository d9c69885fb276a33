"""When a batch is done: at once when there is time to spare, bigger only under a backlog.

The policy is pure (:class:`AdaptiveBatching`); :func:`take_batches` is driven here by a
small stand-in for a Faust stream that records every wait it is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.scorer.batching import (
    BATCH_MAX_RECORDS,
    BATCH_WITHIN_SECONDS,
    AdaptiveBatching,
    take_batches,
)


def test_an_idle_scorer_processes_what_it_has_at_once() -> None:
    policy = AdaptiveBatching()
    for _ in range(50):  # one record every 50 ms, 1 ms of CPU each
        policy.observe(records=1, cpu_seconds=0.001, arrived=1, elapsed_seconds=0.05)
    assert not policy.saturated
    assert policy.wait_seconds(buffered=1, waited_seconds=0.0) == 0.0


def test_a_scorer_always_awaiting_acks_but_with_cpu_to_spare_does_not_wait() -> None:
    # 200 events/s; each batch of 3 spends 1.5 ms of CPU and 13.5 ms awaiting the broker,
    # so the next batch is always in hand when one is published. Counting that as busy
    # (the old rule) made every batch wait the full 50 ms.
    policy = AdaptiveBatching()
    for _ in range(100):
        policy.observe(records=3, cpu_seconds=0.0015, arrived=3, elapsed_seconds=0.015)
    assert not policy.saturated
    assert policy.wait_seconds(buffered=3, waited_seconds=0.0) == 0.0


def test_under_a_backlog_a_batch_waits_for_more_up_to_its_bounds() -> None:
    policy = AdaptiveBatching()
    for _ in range(20):  # 2,000 records/s arrive, 1,000 are processed per CPU second
        policy.observe(records=20, cpu_seconds=0.02, arrived=40, elapsed_seconds=0.02)
    assert policy.saturated
    assert policy.wait_seconds(buffered=10, waited_seconds=0.0) == BATCH_WITHIN_SECONDS
    assert policy.wait_seconds(buffered=10, waited_seconds=0.049) == pytest.approx(0.001)
    assert policy.wait_seconds(buffered=10, waited_seconds=0.2) == 0.0
    assert policy.wait_seconds(buffered=BATCH_MAX_RECORDS, waited_seconds=0.0) == 0.0


def test_when_the_backlog_is_gone_batches_stop_waiting_again() -> None:
    policy = AdaptiveBatching()
    for _ in range(20):
        policy.observe(records=20, cpu_seconds=0.02, arrived=40, elapsed_seconds=0.02)
    assert policy.saturated
    rounds = 0
    while policy.saturated:  # a record every 100 ms
        policy.observe(records=1, cpu_seconds=0.001, arrived=1, elapsed_seconds=0.1)
        rounds += 1
    assert rounds <= 5, "a few quiet batches are enough"


@given(st.lists(st.tuples(st.integers(0, 1000), st.floats(0, 1), st.integers(0, 2000),
                          st.floats(0, 1)), max_size=50),
       st.integers(0, 2000), st.floats(0, 1))
def test_a_wait_is_never_negative_nor_past_the_bound(
        batches: list[tuple[int, float, int, float]], buffered: int, waited: float) -> None:
    policy = AdaptiveBatching()
    for records, cpu, arrived, elapsed in batches:
        policy.observe(records=records, cpu_seconds=cpu, arrived=arrived,
                       elapsed_seconds=elapsed)
        assert policy.arrival_rate >= 0.0
        assert policy.service_rate is None or policy.service_rate > 0.0
    wait = policy.wait_seconds(buffered=buffered, waited_seconds=waited)
    assert 0.0 <= wait <= max(BATCH_WITHIN_SECONDS - waited, 0.0)
    if buffered >= BATCH_MAX_RECORDS or not policy.saturated:
        assert wait == 0.0


class FakeStream:
    """What :func:`take_batches` uses of a Faust stream: processors fed by a passive
    drainer, manual acks, waits that record their timeouts."""

    def __init__(self, values: asyncio.Queue[Any]) -> None:
        self.channel = _Channel(values)
        self.enable_acks = True
        self._processors: list[Any] = []
        self.current_event: Any = None
        self.should_stop = False
        self.acked: list[Any] = []
        self.timeouts: list[float | None] = []

    def add_processor(self, processor: Any) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: Any) -> None:
        self._drainer = asyncio.ensure_future(self._drain(channel))

    async def _drain(self, channel: Any) -> None:
        async for value in channel:
            self.current_event = value
            for processor in self._processors:
                await processor(value)

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.should_stop

    async def ack(self, event: Any) -> None:
        self.acked.append(event)


class _Channel:
    def __init__(self, values: asyncio.Queue[Any]) -> None:
        self.values = values

    def __aiter__(self) -> _Channel:
        return self

    async def __anext__(self) -> Any:
        return await self.values.get()


def test_records_already_fetched_make_one_batch_without_a_timed_wait() -> None:
    async def scenario() -> tuple[list[list[int]], FakeStream]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(5):
            queue.put_nowait(i)
        stream = FakeStream(queue)
        batches = []
        async for batch, waited in take_batches(stream, AdaptiveBatching()):
            assert waited < BATCH_WITHIN_SECONDS
            batches.append(batch)
            if len(batches) == 1:
                assert stream.acked == [], "acked only once the batch is processed"
                queue.put_nowait(5)  # arrives while the first batch is processed
            else:
                break
        return batches, stream

    batches, stream = asyncio.run(scenario())
    assert batches == [[0, 1, 2, 3, 4], [5]]
    assert stream.acked == [0, 1, 2, 3, 4], "the second batch's loop never came back"
    assert set(stream.timeouts) == {None}, "no timed wait for more: the scorer was idle"
    assert stream.enable_acks, "restored"


def test_a_saturated_scorer_waits_for_the_batch_to_fill() -> None:
    async def scenario() -> tuple[list[list[int]], FakeStream]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        queue.put_nowait(0)
        stream = FakeStream(queue)
        policy = AdaptiveBatching(max_records=3)
        for _ in range(20):  # 10 records/s arrive, 1 is processed per CPU second
            policy.observe(records=1, cpu_seconds=1.0, arrived=10, elapsed_seconds=1.0)

        async def late() -> None:
            await asyncio.sleep(0.01)
            queue.put_nowait(1)
            queue.put_nowait(2)

        task = asyncio.ensure_future(late())
        async for batch, waited in take_batches(stream, policy):
            await task
            assert 0.005 < waited < BATCH_WITHIN_SECONDS
            return [batch], stream
        raise AssertionError("no batch")

    batches, stream = asyncio.run(scenario())
    assert batches == [[0, 1, 2]], "it waited for the two records after the first"
    assert stream.timeouts[-1] == pytest.approx(BATCH_WITHIN_SECONDS, abs=0.01)


def test_each_batch_is_measured_by_its_records_its_cpu_and_the_records_that_came() -> None:
    class Recording(AdaptiveBatching):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[dict[str, Any]] = []

        def observe(self, **measured: Any) -> None:
            self.seen.append(measured)
            super().observe(**measured)

    cpu = [0.0]

    async def scenario() -> Recording:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(5):
            queue.put_nowait(i)
        policy = Recording()
        batches = 0
        async for _batch, _ in take_batches(FakeStream(queue), policy,
                                            cpu_clock=lambda: cpu[0]):
            batches += 1
            if batches == 1:  # processing the first: 0.25 s of CPU, two records come
                cpu[0] += 0.25
                queue.put_nowait(5)
                queue.put_nowait(6)
                await asyncio.sleep(0)
            elif batches == 2:
                cpu[0] += 0.5
                queue.put_nowait(7)
            else:
                return policy
        raise AssertionError("the stream ended")

    policy = asyncio.run(scenario())
    assert [(m["records"], m["cpu_seconds"], m["arrived"]) for m in policy.seen] == [
        (5, 0.25, 5), (2, 0.5, 2)]
    assert all(m["elapsed_seconds"] > 0 for m in policy.seen)
    assert policy.service_rate == pytest.approx(20 - 0.2 * (20 - 4))  # 5/0.25, then 2/0.5
