"""A declared :class:`~features.spec.Feature` compiled into the pieces both engines use.

A plan binds the feature's window object, aggregation class and filter, and says how an
event becomes the aggregation's input: nothing (the event is skipped: it fails the
filter or its field is null), a timestamp, a float, or the raw value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from features.aggregations import AGGREGATIONS, Aggregation
from features.predicates import is_null, matches
from features.spec import NUMERIC, Feature, FeatureSet, Where
from features.windows import Lifetime, TimeWindow, window_of


#: The input of an event that does not count for a feature.
class _Skip:
    """The "this event does not feed this feature" marker; one instance, even after pickling
    (entity state is pickled into a Faust table, and ``x is SKIP`` must still hold)."""

    def __reduce__(self) -> str:
        return "SKIP"

    def __repr__(self) -> str:
        return "SKIP"


SKIP: Final = _Skip()

#: Aggregations whose value is an int (never null).
INTEGER_VALUED = frozenset({"count", "count_distinct"})


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

    def new_aggregation(self) -> Aggregation:
        """Lifetime windows never revert, so their aggregations may keep less."""
        return self.agg_type(revertible=not self.is_lifetime)

    def input_of(self, ts: int, attrs: Mapping[str, Any]) -> Any:
        """What the aggregation receives for this event, or :data:`SKIP`."""
        if self.filters and not matches(self.filters, attrs):
            return SKIP
        if self.field is None:
            return ts if self.agg == "seconds_since_previous" else None
        value = attrs.get(self.field)
        if is_null(value):
            return SKIP
        if self.agg in NUMERIC:
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"feature {self.name!r}: field {self.field!r} holds {value!r}, not a number"
                ) from None
        if self.agg in ("first", "last") and isinstance(value, int | float | np.number):
            return float(value)
        return value


def plans_of(feature_set: FeatureSet) -> list[FeaturePlan]:
    return [FeaturePlan.of(f) for f in feature_set.features]
