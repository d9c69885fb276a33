"""Aggregations over a window's values, all with the interface of :mod:`.base`.

:data:`AGGREGATIONS` is the one registry: spec, plan, engine, columns and reference
read every property of an aggregation from its class (see :mod:`.base`).
"""

from __future__ import annotations

from features.aggregations.base import Aggregation, Reads, window_value
from features.aggregations.count import Count
from features.aggregations.count_distinct import CountDistinct
from features.aggregations.ends import First, Last, RollingFirst
from features.aggregations.extrema import Max, Min, RollingMax, RollingMin
from features.aggregations.seconds_since_previous import SecondsSincePrevious
from features.aggregations.sum import Mean, Sum
from features.aggregations.variance import Stddev, Variance

#: The aggregation class (the lifetime one; ``.windowed()`` for moving windows) per name.
AGGREGATIONS: dict[str, type[Aggregation]] = {
    cls.name: cls
    for cls in (
        Count, Sum, Mean, Min, Max, Variance, Stddev, First, Last, CountDistinct,
        SecondsSincePrevious,
    )
}

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "Count",
    "CountDistinct",
    "First",
    "Last",
    "Max",
    "Mean",
    "Min",
    "Reads",
    "RollingFirst",
    "RollingMax",
    "RollingMin",
    "SecondsSincePrevious",
    "Stddev",
    "Sum",
    "Variance",
    "window_value",
]
