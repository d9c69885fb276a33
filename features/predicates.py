"""``where`` filters: does an event match every clause of a feature?

Two evaluations with one meaning: :func:`matches` on one event's attribute mapping
(online) and :func:`mask` on a DataFrame (offline). A missing field is null; any
comparison with null is false (``ne`` and ``not_in`` included); ``is_null`` and
``not_null`` test for it; a comparison between incomparable types is false.

>>> from features.spec import Where
>>> big = (Where(field="amount", op="gt", value=100),)
>>> matches(big, {"amount": 250}), matches(big, {"amount": None}), matches(big, {})
(True, False, False)
>>> import pandas as pd
>>> mask(big, pd.DataFrame({"amount": [250, None, 5]})).tolist()
[True, False, False]
>>> web = (Where(field="channel", op="ne", value="web"),)
>>> mask(web, pd.DataFrame({"channel": pd.Series(["web", None, "fax"], dtype="str")})).tolist()
[False, False, True]
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from features.spec import Where

if TYPE_CHECKING:
    import pandas as pd

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def is_null(value: Any) -> bool:
    """None, NaN (any float type), pandas NA/NaT (without importing pandas: a value
    cannot be one of its objects before it is imported)."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    pd = sys.modules.get("pandas")
    return pd is not None and (value is pd.NA or value is pd.NaT)


def _holds(clause: Where, value: Any) -> bool:
    if clause.op == "is_null":
        return is_null(value)
    if clause.op == "not_null":
        return not is_null(value)
    if is_null(value):
        return False
    if clause.op in ("in", "not_in"):
        assert isinstance(clause.value, list)
        found = any(_equal(value, v) for v in clause.value)
        return found if clause.op == "in" else not found
    try:
        return bool(_COMPARE[clause.op](value, clause.value))
    except TypeError:
        return False


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except TypeError:
        return False


def matches(filters: Sequence[Where], attrs: Mapping[str, Any]) -> bool:
    """Whether the event ``attrs`` satisfies every clause."""
    return all(_holds(c, attrs.get(c.field)) for c in filters)


def _is_plain_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _clause_mask(clause: Where, frame: pd.DataFrame) -> np.ndarray:
    import pandas as pd  # offline only: the online engine does without it

    n = len(frame)
    if clause.field not in frame.columns:
        return np.full(n, clause.op == "is_null")
    column = frame[clause.field]
    null = column.isna().to_numpy()
    if clause.op in ("is_null", "not_null"):
        return null if clause.op == "is_null" else ~null
    values = clause.value if isinstance(clause.value, list) else [clause.value]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and all(_is_plain_number(v) for v in values):
        x = column.to_numpy(dtype="float64", na_value=np.nan)
        if clause.op in ("in", "not_in"):
            found = np.isin(x, np.asarray(values, dtype="float64"))
            hit = found if clause.op == "in" else ~found
        else:
            with np.errstate(invalid="ignore"):
                hit = _COMPARE[clause.op](x, float(values[0]))
        return np.asarray(hit, dtype=bool) & ~null
    text = isinstance(column.dtype, pd.StringDtype)  # strings only (and nulls)
    if text and clause.op in ("eq", "ne", "in", "not_in") and \
            all(isinstance(v, str) for v in values):
        found = column.isin(values).to_numpy(dtype=bool, na_value=False)
        hit = found if clause.op in ("eq", "in") else ~found
        return hit & ~null
    # Booleans, mixed objects, ordering of text: the scalar rule, element by element.
    return np.fromiter((_holds(clause, v) for v in column.to_numpy(dtype=object)), bool, n)


def mask(filters: Sequence[Where], frame: pd.DataFrame) -> np.ndarray:
    """Boolean array: which rows of ``frame`` satisfy every clause."""
    out = np.ones(len(frame), dtype=bool)
    for clause in filters:
        out &= _clause_mask(clause, frame)
    return out
