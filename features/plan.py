"""A declared :class:`~features.spec.Feature` compiled into the pieces both engines use.

A plan binds the feature's window object, aggregation classes and filter, and says what
an event gives the feature: :data:`SKIP` (it fails the filter, or its field is null),
or the value to keep. :meth:`FeaturePlan.value_of` checks and normalises the event's
field (what the engine buffers: a plain ``str``/``int``/``float``/``bool``);
:meth:`FeaturePlan.input_of` turns a kept value into the aggregation's input, as the
aggregation's ``reads`` declares: nothing, the event time, a float, or the value itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from features.aggregations import AGGREGATIONS, Aggregation
from features.predicates import is_null, matches
from features.spec import Feature, FeatureSet, Where
from features.windows import Lifetime, TimeWindow, window_of


class _Skip:
    """"This event does not feed this feature". Never stored: the engine's state records
    which features an event feeds as bit flags (plain data)."""

    def __repr__(self) -> str:
        return "SKIP"


#: The value of an event that does not count for a feature.
SKIP: Final = _Skip()

#: Aggregations whose value is an int (never null).
INTEGER_VALUED = frozenset(name for name, cls in AGGREGATIONS.items() if cls.integer_valued)


@dataclass(frozen=True)
class FeaturePlan:
    name: str
    agg: str
    field: str | None
    filters: tuple[Where, ...]
    window: TimeWindow
    agg_type: type[Aggregation]

    @classmethod
    def of(cls, feature: Feature) -> FeaturePlan:
        return cls(
            name=feature.name,
            agg=feature.agg,
            field=feature.field,
            filters=feature.filters,
            window=window_of(feature.window),
            agg_type=AGGREGATIONS[feature.agg],
        )

    @property
    def is_lifetime(self) -> bool:
        return isinstance(self.window, Lifetime)

    @property
    def running_type(self) -> type[Aggregation]:
        """The class that runs in this feature's window: one that can revert when events
        leave it one by one; otherwise (lifetime, tumbling) the plain one."""
        return self.agg_type.windowed() if self.window.sheds_events else self.agg_type

    def new_aggregation(self) -> Aggregation:
        return self.running_type()

    def value_of(self, attrs: Mapping[str, Any]) -> Any:
        """The value this event gives the feature (None for field-less ones), or :data:`SKIP`.

        Raises ``ValueError`` naming the feature when a numeric field holds a non-number.
        """
        if self.filters and not matches(self.filters, attrs):
            return SKIP
        if self.field is None:
            return None
        value = attrs.get(self.field)
        if is_null(value):
            return SKIP
        if isinstance(value, np.generic):
            value = value.item()
        reads = self.agg_type.reads
        if reads == "number" or (reads == "value" and isinstance(value, int | float)):
            try:
                float(value)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(
                    f"feature {self.name!r}: field {self.field!r} holds {value!r}, not a number"
                ) from None
        return value

    def input_of(self, ts: int, value: Any) -> Any:
        """What the aggregation receives for a kept ``value`` of an event at ``ts``."""
        reads = self.agg_type.reads
        if reads == "time":
            return ts
        if reads == "number" or (reads == "value" and isinstance(value, int | float)):
            return float(value)
        return value


def plans_of(feature_set: FeatureSet) -> list[FeaturePlan]:
    return [FeaturePlan.of(f) for f in feature_set.features]
