"""The one interface every aggregation shares (River style), and what each declares.

``update(x)`` adds a value, ``merge(other)`` folds in a partial state covering later
events, ``get()`` reads the value. A window with a moving start also needs
``revert(x)``: remove the OLDEST value still held (what the window does when its start
moves past an event; values arrive in event-time order). Aggregations never see time
except through their inputs (``seconds_since_previous`` reads timestamps). Null values
never reach an aggregation: the engine skips them.

Each aggregation declares everything the rest of the package needs, once, here:

- ``name``: what a feature declares (``agg: sum``);
- ``reads``: its input. ``"event"`` (no field, counts events), ``"time"`` (no field, the
  event time in ms), ``"number"`` (a numeric field, as float), ``"value"`` (any value,
  numbers as floats), ``"key"`` (any value, compared for equality);
- ``integer_valued``: the value is an int, never null;
- ``order_free``: ``update`` (and ``revert``) do not depend on order, so a late event is
  simply added;
- ``excludes_self``: the value for an event is read before the event is added;
- ``windowed``: the class that runs in a window with a moving start (default: the same
  class). Where keeping what ``revert`` needs costs more, there are two honest classes
  (``Max`` keeps one value, ``RollingMax`` a monotonic deque), as in River;
- ``column(rows)``: the vectorised kernel of the offline replay (:mod:`features.columns`);
- ``exact(values, t)``: the brute-force definition the reference uses;
- ``to_data()`` / ``from_data(data)``: the state as plain data (ints, floats, strings);
  ``data_type`` is its msgspec type, so a decoder can check the whole of an entity's
  state in one typed pass (:mod:`features.codec`) and hand each aggregation data already
  of that type (``from_typed``: only the checks a type cannot state are left).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import msgspec
import numpy as np

if TYPE_CHECKING:
    from features.columns import Rows
    from features.windows import TimeWindow

Reads = Literal["event", "time", "number", "value", "key"]
#: What a value read from an event may be, once in an aggregation's state.
Scalar = str | int | float | bool


class Aggregation:
    """Base class: see the module docstring for the contract."""

    name: ClassVar[str]
    reads: ClassVar[Reads]
    integer_valued: ClassVar[bool] = False
    order_free: ClassVar[bool] = False
    excludes_self: ClassVar[bool] = False
    #: The value is read from the window's buffered values, not kept (see ``RollingFirst``).
    reads_window: ClassVar[bool] = False
    _windowed: ClassVar[type[Aggregation] | None] = None
    #: The msgspec type of :meth:`to_data` (None for one that keeps no state).
    data_type: ClassVar[Any] = None

    @classmethod
    def windowed(cls) -> type[Aggregation]:
        """The class that runs in a window whose start moves (it can ``revert``)."""
        return cls._windowed or cls

    @classmethod
    def reads_field(cls) -> bool:
        return cls.reads not in ("event", "time")

    def update(self, x: Any) -> None:
        raise NotImplementedError

    def revert(self, x: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} runs only in lifetime windows")

    def merge(self, other: Aggregation) -> None:
        raise NotImplementedError

    def get(self) -> Any:
        raise NotImplementedError

    def value_as_of(self, t: int) -> Any:
        """The feature value for an event at ``t`` (all but one aggregation: ``get()``)."""
        return self.get()

    def clone(self) -> Aggregation:
        return copy.deepcopy(self)

    def to_data(self) -> list[Any]:
        raise NotImplementedError

    @classmethod
    def from_data(cls, data: Any) -> Aggregation:
        """Rebuild from :meth:`to_data`; raises ``msgspec.ValidationError`` or ``ValueError``."""
        return cls.from_typed(convert(data, cls.data_type))

    @classmethod
    def from_typed(cls, data: Any) -> Aggregation:
        """Rebuild from data already of :attr:`data_type`; raises ``ValueError`` for what
        the type cannot rule out (a negative count, ...)."""
        raise NotImplementedError

    @staticmethod
    def column(rows: Rows) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def exact(values: Sequence[Any], t: int) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get()!r})"


def convert(data: Any, type_: Any) -> Any:
    """``msgspec.convert`` for restoring state: ints are accepted as floats."""
    return msgspec.convert(data, type_, strict=True)


def count_of(n: int) -> int:
    if n < 0:
        raise ValueError(f"a count cannot be negative: {n}")
    return n


def exact_float(x: Fraction) -> float | None:
    """``float(x)``, or None when it does not fit a float."""
    try:
        return float(x)
    except OverflowError:
        return None


def fractions(values: Sequence[float]) -> list[Fraction] | None:
    """Exact values, or None when one is not finite (the result would not be either)."""
    if not all(math.isfinite(v) for v in values):
        return None
    return [Fraction(v) for v in values]


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
