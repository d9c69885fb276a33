"""Reading back input records the stream consumer skipped.

faust-streaming can drop records fetched across a rebalance while the committed offset
moves past them (faust-streaming #216, #221, #312); seen here as one or two events lost
when a worker restarts under load, and labels alike (a chaos run once ended with five of
6,000 labels never joined and no count saying why). The worker notices the gap (offsets
of the events and labels topics are contiguous; the ``partitions`` table keeps the next
offset due on each) and reads the missing range with a plain consumer outside the group,
so the records are processed, in order, before the one that revealed the gap.
A gap at the tail of a partition has no later record to reveal it: a timer compares the
partition's end with the next offset due once the partition has been idle for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

#: A gap this long is read back in one go; longer ones would be a sign of another fault.
MAX_GAP_RECORDS = 100_000


class GapReader:
    """Reads ``[start, end)`` of one partition; one consumer, started on first use.

    ``client_options`` are aiokafka's connection options, ``bootstrap_servers`` and
    authentication included (:func:`streams.kafka_clients.aiokafka_options`).
    """

    def __init__(self, client_options: dict[str, Any]) -> None:
        self.client_options = dict(client_options)
        self._consumer: AIOKafkaConsumer | None = None

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(**self.client_options,
                                              enable_auto_commit=False, group_id=None)
            await self._consumer.start()
        return self._consumer

    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next record produced to the partition will get."""
        tp = TopicPartition(topic, partition)
        try:
            return (await (await self._started()).end_offsets([tp]))[tp]
        except Exception:
            await self.close()  # a consumer broken by a broker outage is started afresh
            raise

    async def read(self, topic: str, partition: int, start: int,
                   end: int) -> list[ConsumerRecord]:
        if end - start > MAX_GAP_RECORDS:
            raise RuntimeError(f"{topic}[{partition}] skipped {end - start} records "
                               f"({start}..{end - 1}): too many to read back")
        consumer = await self._started()
        tp = TopicPartition(topic, partition)
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            out: list[ConsumerRecord] = []
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                out.extend(r for r in batch.get(tp, []) if r.offset < end)
            return out
        except Exception:
            await self.close()
            raise

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()


class VersionFollower:
    """Reads a one-partition topic from its start, then follows it (no consumer group:
    every scorer needs every record of ``model.versions``). ``client_options`` as for
    :class:`GapReader`."""

    def __init__(self, client_options: dict[str, Any], topic: str, poll_ms: int = 1000) -> None:
        self.client_options = dict(client_options)
        self.topic = topic
        self.poll_ms = poll_ms
        self._consumer: AIOKafkaConsumer | None = None

    async def batches(self) -> AsyncIterator[tuple[list[bytes | None], bool]]:
        """Yield ``(values, caught_up)``: caught_up once the end seen at start is reached.
        A broken consumer (broker outage) is started afresh after a pause."""
        tp = TopicPartition(self.topic, 0)
        caught_up = False
        while True:
            try:
                if self._consumer is None:
                    self._consumer = AIOKafkaConsumer(
                        **self.client_options, enable_auto_commit=False,
                        group_id=None, max_partition_fetch_bytes=8 << 20)
                    await self._consumer.start()
                    self._consumer.assign([tp])
                    await self._consumer.seek_to_beginning(tp)
                    end = (await self._consumer.end_offsets([tp]))[tp]
                    caught_up = caught_up or end == 0
                    if caught_up:
                        yield [], True
                batch = await self._consumer.getmany(tp, timeout_ms=self.poll_ms)
                records = batch.get(tp, [])
                if not caught_up and await self._consumer.position(tp) >= end:
                    caught_up = True
                if records or caught_up:
                    yield [r.value for r in records], caught_up
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception:
                await self.close()
                await asyncio.sleep(2.0)

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
