"""Feature definitions: what a feature is, as declared in config.

A feature is ``aggregation × window × filter`` over one field of an event. The three parts
are independent objects: a window kind never needs to know which aggregation runs in it,
and the reverse. A :class:`FeatureSet` is an ordered list of features plus the identity
(a hash of its normalised definition) that every scored record names, so a training set
and the online worker can be checked to use exactly the same definitions.

>>> fs = FeatureSet(features=[
...     {"name": "n_1h", "agg": "count", "window": {"kind": "sliding", "size": "1h"}},
...     {"name": "amount_sum_day", "agg": "sum", "field": "amount",
...      "window": {"kind": "tumbling", "size": "1d"}},
... ])
>>> fs.features[0].window.size_ms
3600000
>>> len(fs.identity)
12
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from features.aggregations import AGGREGATIONS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(value: Any) -> int:
    """Turn ``90``/``"90s"``/``"15m"``/``"1h"``/``"7d"`` into integer milliseconds.

    A bare number is seconds.

    >>> parse_duration_ms("15m"), parse_duration_ms(2), parse_duration_ms("250ms")
    (900000, 2000, 250)
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '15m'")
    if isinstance(value, int | float):
        ms = value * 1000
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        ms = float(m.group(1)) * _UNIT_MS[m.group(2) or "s"]
    else:
        raise ValueError(
            f"not a duration: {value!r} (use seconds or e.g. '90s', '15m', '1h', '7d')"
        )
    if ms <= 0 or ms != int(ms):
        raise ValueError(f"a duration must be a positive whole number of milliseconds: {value!r}")
    return int(ms)


DurationMs = Annotated[int, BeforeValidator(parse_duration_ms)]

WindowKind = Literal["lifetime", "tumbling", "hopping", "sliding"]
#: The names a feature's ``agg`` may take, in the registry's order.
Aggregation = Literal[tuple(AGGREGATIONS)]  # type: ignore[valid-type]
#: Aggregations that read no field: they describe the events themselves.
FIELDLESS = frozenset(name for name, cls in AGGREGATIONS.items() if not cls.reads_field())
#: Aggregations that need a numeric field.
NUMERIC = frozenset(name for name, cls in AGGREGATIONS.items() if cls.reads == "number")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    """Where in time a feature looks, relative to the event being featurised.

    ``size``/``hop`` accept seconds or strings like ``"15m"``; they are held in ms.
    Windows exclude their start and include their end.
    """

    kind: WindowKind
    size_ms: DurationMs | None = Field(default=None, alias="size")
    hop_ms: DurationMs | None = Field(default=None, alias="hop")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _check_sizes(self) -> Window:
        if self.kind == "lifetime":
            if self.size_ms is not None or self.hop_ms is not None:
                raise ValueError("a lifetime window takes no size or hop")
            return self
        if self.size_ms is None:
            raise ValueError(f"a {self.kind} window needs a size")
        if self.kind == "hopping":
            if self.hop_ms is None:
                raise ValueError("a hopping window needs a hop")
            if self.size_ms % self.hop_ms != 0:
                raise ValueError("a hopping window's size must be a multiple of its hop")
        elif self.hop_ms is not None:
            raise ValueError(f"a {self.kind} window takes no hop")
        return self


Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null"]
Scalar = str | int | float | bool


class Where(_Strict):
    """A structured filter on one field of the event (never evaluated code).

    ``value`` is a scalar for comparisons, a list for ``in``/``not_in`` and absent for
    ``is_null``/``not_null``. Comparisons with a null field are false.
    """

    field: str
    op: Op
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _check_value(self) -> Where:
        if self.op in ("is_null", "not_null"):
            if self.value is not None:
                raise ValueError(f"'{self.op}' takes no value")
        elif self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"'{self.op}' needs a non-empty list value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"'{self.op}' needs a single value")
        return self

    def __hash__(self) -> int:
        # Filters key the engines' masks; a list value (in / not_in) hashes as a tuple.
        value = tuple(self.value) if isinstance(self.value, list) else self.value
        return hash((self.field, self.op, value))


class Feature(_Strict):
    """One feature: ``agg`` over ``field`` within ``window``, on events matching ``where``."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    agg: Aggregation
    field: str | None = None
    window: Window = Window(kind="lifetime")
    where: Where | list[Where] | None = None

    @model_validator(mode="after")
    def _check_field(self) -> Feature:
        if self.agg in FIELDLESS and self.field is not None:
            raise ValueError(f"'{self.agg}' reads no field; remove 'field'")
        if self.agg not in FIELDLESS and self.field is None:
            raise ValueError(f"'{self.agg}' needs a 'field' to aggregate")
        return self

    @property
    def filters(self) -> tuple[Where, ...]:
        """The ``where`` clauses as a tuple (all must hold)."""
        if self.where is None:
            return ()
        return tuple(self.where) if isinstance(self.where, list) else (self.where,)


class FeatureSet(_Strict):
    """The ordered features computed for every event, with a stable identity."""

    features: list[Feature]

    @model_validator(mode="after")
    def _unique_names(self) -> FeatureSet:
        seen: set[str] = set()
        for i, f in enumerate(self.features):
            if f.name in seen:
                raise ValueError(f"@features.{i}.name: duplicate feature name {f.name!r}")
            seen.add(f.name)
        return self

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def identity(self) -> str:
        """First 12 hex digits of the SHA-256 of the normalised definition."""
        canonical = json.dumps(
            [f.model_dump(mode="json", by_alias=True) for f in self.features],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]
