"""Putting back input records the stream consumer skipped (see :mod:`streams.scorer.gaps`).

:class:`GapRepair` asks :meth:`Processor.missing_before
<streams.scorer.processor.Processor.missing_before>` (the one statement of the rule) where
a batch, or an idle partition's tail, starts after a gap, and reads the missing records
with a :class:`~streams.scorer.gaps.GapReader` (or anything with its ``read``).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from streams.scorer.batch import InRecord

log = logging.getLogger(__name__)


class Positions(Protocol):
    def missing_before(self, partition: int, offset: int, *, labels: bool = False,
                       due: int | None = None) -> int | None: ...


class Reader(Protocol):
    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Any]: ...


class GapRepair:
    def __init__(self, positions: Positions, reader: Reader) -> None:
        self.positions = positions
        self.reader = reader

    async def fill(self, records: list[InRecord], *,
                   labels: bool = False) -> tuple[list[InRecord], int]:
        """The batch with any records skipped before them put back in place (``labels``: a
        batch of the labels topic), and how many were put back."""
        out: list[InRecord] = []
        expected: dict[int, int] = {}
        skipped = 0
        for rec in records:
            start = self.positions.missing_before(rec.partition, rec.offset, labels=labels,
                                                  due=expected.get(rec.partition))
            if start is not None:
                found = await self.read(rec.topic, rec.partition, start, rec.offset)
                out.extend(found)
                skipped += len(found)
            out.append(rec)
            expected[rec.partition] = rec.offset + 1
        return out, skipped

    async def tail(self, topic: str, partition: int, fetched: int, *, labels: bool = False,
                   limit: int | None = None) -> list[InRecord]:
        """Records skipped at the end of a partition (nothing later reveals them): those
        below ``fetched``, the stream consumer's position (it was handed every record
        before it), not yet processed; the first ``limit`` of them when given (the rest at
        the next call, if still missing). Records from ``fetched`` on are the stream's to
        deliver: a partition merely behind a backlog has nothing skipped."""
        start = self.positions.missing_before(partition, fetched, labels=labels)
        if start is None:
            return []
        return await self.read(topic, partition, start,
                               fetched if limit is None else min(fetched, start + limit))

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[InRecord]:
        log.error("%s[%d]: offsets %d..%d were skipped by the consumer; reading them back",
                  topic, partition, start, end - 1)
        return [InRecord(r.value or b"", r.key, r.topic, r.partition, r.offset, r.timestamp)
                for r in await self.reader.read(topic, partition, start, end)]
