"""Reading back input records the stream consumer skipped.

faust-streaming can drop records fetched across a rebalance while the committed offset
moves past them (faust-streaming #216, #221, #312); seen here as one or two events lost
when a worker restarts under load. The worker notices the gap (offsets of the events
topic are contiguous) and reads the missing range with a plain consumer outside the
group, so the records are processed, in order, before the one that revealed the gap.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

#: A gap this long is read back in one go; longer ones would be a sign of another fault.
MAX_GAP_RECORDS = 100_000


class GapReader:
    """Reads ``[start, end)`` of one partition; one consumer, started on first use."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self, topic: str, partition: int, start: int,
                   end: int) -> list[ConsumerRecord]:
        if end - start > MAX_GAP_RECORDS:
            raise RuntimeError(f"{topic}[{partition}] skipped {end - start} records "
                               f"({start}..{end - 1}): too many to read back")
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers,
                                              enable_auto_commit=False, group_id=None)
            await self._consumer.start()
        tp = TopicPartition(topic, partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, start)
        out: list[ConsumerRecord] = []
        while await self._consumer.position(tp) < end:
            batch = await self._consumer.getmany(tp, timeout_ms=1000)
            records = batch.get(tp, [])
            if not records and await self._consumer.position(tp) < end:
                continue
            out.extend(r for r in records if r.offset < end)
        return out

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
