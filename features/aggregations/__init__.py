"""Aggregations over a window's values, all with the interface of :mod:`.base`."""

from __future__ import annotations

from features.aggregations.base import Aggregation, window_value
from features.aggregations.count import Count
from features.aggregations.count_distinct import CountDistinct
from features.aggregations.ends import First, Last
from features.aggregations.extrema import Max, Min
from features.aggregations.seconds_since_previous import SecondsSincePrevious
from features.aggregations.sum import Mean, Sum
from features.aggregations.variance import Stddev, Variance

#: The aggregation class for each name a feature can declare.
AGGREGATIONS: dict[str, type[Aggregation]] = {
    "count": Count,
    "sum": Sum,
    "mean": Mean,
    "min": Min,
    "max": Max,
    "variance": Variance,
    "stddev": Stddev,
    "first": First,
    "last": Last,
    "count_distinct": CountDistinct,
    "seconds_since_previous": SecondsSincePrevious,
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
    "SecondsSincePrevious",
    "Stddev",
    "Sum",
    "Variance",
    "window_value",
]
