"""Reading back input records the stream consumer skipped.

faust-streaming can drop records fetched across a rebalance while the committed offset
moves past them (faust-streaming #216, #221, #312); seen here as one or two events lost
when a worker restarts under load. The worker notices the gap (offsets of the events
topic are contiguous) and reads the missing range with a plain consumer outside the
group, so the records are processed, in order, before the one that revealed the gap.
A gap at the tail of a partition has no later record to reveal it: a timer compares the
partition's end with the next offset due once the partition has been idle for a while.
"""

from __future__ import annotations

import contextlib
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
