"""Where each input partition stands: the ``partitions`` table, read and written.

Per partition number: the event watermark, the next events offset due, the label
watermark and the next labels offset due (:class:`~streams.scorer.state.PartitionState`).
Offsets of the input topics are contiguous, so a record beyond the next offset due means
records were skipped; :meth:`Positions.missing_before` is the one statement of that rule
(the shell's read-back and tail check ask it).

>>> from streams.scorer.tables import StateTable, Tables
>>> t = Tables(*(StateTable(n, {}, f"cl-{n}") for n in ("e", "p", "h", "partitions")))
>>> positions = Positions(t)
>>> batch = positions.batch()
>>> batch.get(0).next_offset = 7
>>> batch.flush()
>>> positions.next_offset(0), positions.missing_before(0, 9), positions.missing_before(0, 7)
(7, 7, None)
"""

from __future__ import annotations

from streams.scorer.state import PartitionState, encode
from streams.scorer.tables import Tables


def partition_key(partition: int) -> bytes:
    return b"p%d" % partition


class PositionBatch:
    """The partition states one batch touches, read once and written back once."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._parts: dict[int, PartitionState] = {}

    def get(self, partition: int) -> PartitionState:
        part = self._parts.get(partition)
        if part is None:
            part = self._tables.read(self._tables.partitions, partition_key(partition),
                                     PartitionState) or PartitionState()
            self._parts[partition] = part
        return part

    def flush(self) -> None:
        for partition, part in self._parts.items():
            self._tables.partitions.put(partition_key(partition), encode(part), partition)


class Positions:
    """Reads of the ``partitions`` table; batches write through :meth:`batch`."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def batch(self) -> PositionBatch:
        return PositionBatch(self.tables)

    def state(self, partition: int) -> PartitionState | None:
        return self.tables.read(self.tables.partitions, partition_key(partition),
                                PartitionState)

    def next_offset(self, partition: int, *, labels: bool = False) -> int:
        """The next offset due on an events partition, or with ``labels`` on a labels
        partition (0 when nothing was processed)."""
        part = self.state(partition)
        if part is None:
            return 0
        return part.next_label_offset if labels else part.next_offset

    def missing_before(self, partition: int, offset: int, *, labels: bool = False,
                       due: int | None = None) -> int | None:
        """The first offset skipped before ``offset`` on its partition, if any was.

        ``due``: the next offset due when the caller knows it already (the record before
        this one in the same batch); otherwise the table says. Nothing is missing on a
        partition never processed (due 0): the group's committed offset decides where the
        consumer starts.
        """
        if due is None:
            due = self.next_offset(partition, labels=labels)
        return due if 0 < due < offset else None
