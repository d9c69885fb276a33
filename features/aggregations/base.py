"""The one interface every aggregation shares (River style).

``update(x)`` adds a value, ``revert(x)`` removes the OLDEST value still held (what a
window does when its start moves past an event; values arrive in event-time order),
``merge(other)`` folds in a partial state covering later events, ``get()`` reads the
value. Aggregations never see time except :class:`SecondsSincePrevious`, whose inputs
are timestamps. Null values never reach an aggregation: the engine skips them.

An aggregation built with ``revertible=False`` (lifetime windows) may drop the history
a revert would need, which keeps its state bounded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, ClassVar

from features.windows import TimeWindow


class Aggregation:
    """Base class: see the module docstring for the contract."""

    #: The value for an event excludes the event itself (read before ``update``).
    excludes_self: ClassVar[bool] = False

    def __init__(self, revertible: bool = True) -> None:
        self.revertible = revertible

    def update(self, x: Any) -> None:
        raise NotImplementedError

    def revert(self, x: Any) -> None:
        raise NotImplementedError

    def merge(self, other: Aggregation) -> None:
        raise NotImplementedError

    def get(self) -> Any:
        raise NotImplementedError

    def value_as_of(self, t: int) -> Any:
        """The feature value for an event at ``t`` (all but one aggregation: ``get()``)."""
        return self.get()

    def clone(self) -> Aggregation:
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get()!r})"


def window_value(
    agg_type: type[Aggregation], window: TimeWindow, events: Iterable[tuple[int, Any]], as_of: int
) -> Any:
    """Aggregate the ``(ts, value)`` events that ``window`` covers as of ``as_of``.

    The events are taken in event-time order (stable); used by the doctests.
    """
    agg = agg_type()
    for ts, x in sorted(events, key=lambda e: e[0]):
        if window.covers(ts, as_of=as_of) and x is not None:
            agg.update(x)
    return agg.value_as_of(as_of)
