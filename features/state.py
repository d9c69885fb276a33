"""What the online engine remembers about one entity: plain objects, no behaviour.

:class:`FeatureEngine <features.engine.FeatureEngine>` reads and writes these;
:mod:`features.codec` turns them into bytes and back. Per entity:

- ``max_ts``: the highest event time applied (None before the first event);
- ``buffers``: ONE :class:`Buffer` per (field, window) that needs one, shared by every
  feature over that field and window (sum, mean and max of ``amount`` over a sliding
  hour share one);
- ``running[i]``: feature ``i``'s aggregation over its current window (None when its
  value is read from the buffer, as ``first`` over a moving window is);
- ``held[i]``: how many buffered entries feature ``i``'s running aggregation holds (not
  encoded: the codec counts them again);
- ``settled[i]``: for a lifetime or tumbling feature when lateness is allowed, the
  aggregation of the events of its current window older than the lateness (every
  event still to come is later than those).
"""

from __future__ import annotations

from typing import Any

from features.aggregations import Aggregation


class Buffer:
    """Buffered events of one (field, window), in (time, arrival) order, as parallel lists.

    ``flags[k]`` has bit ``j`` set when entry ``k`` counts for the group's ``j``-th
    feature (its filter holds and its value is not null); an event that counts for none
    is not buffered. ``values`` is None when no feature of the group reads the field.
    ``cursor``: for a window that sheds events (sliding, hopping), the first entry inside
    the current window; for a lifetime or tumbling window, the first entry not settled.
    """

    __slots__ = ("cursor", "flags", "ts", "values")

    def __init__(self, keeps_values: bool) -> None:
        self.ts: list[int] = []
        self.flags: list[int] = []
        self.values: list[Any] | None = [] if keeps_values else None
        self.cursor = 0

    def __len__(self) -> int:
        return len(self.ts)

    def value(self, k: int) -> Any:
        return None if self.values is None else self.values[k]


class EntityState:
    """Everything the engine remembers about one entity (see the module docstring)."""

    __slots__ = ("buffers", "held", "max_ts", "running", "settled")

    def __init__(
        self,
        buffers: list[Buffer],
        running: list[Aggregation | None],
        settled: list[Aggregation | None],
    ) -> None:
        self.max_ts: int | None = None
        self.buffers = buffers
        self.running = running
        self.held = [0] * len(running)
        self.settled = settled
