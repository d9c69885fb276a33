"""Event times into integer epoch milliseconds (UTC), whatever the column holds.

pandas 3 infers a datetime column's resolution (s, ms, us, ns), so the conversion
subtracts the epoch and floor-divides by one millisecond instead of assuming ns.

>>> import pandas as pd
>>> to_epoch_ms(pd.Series(["1970-01-01T00:00:01.5Z", "1970-01-02"])).tolist()
[1500, 86400000]
>>> to_epoch_ms(pd.Series(pd.to_datetime(["2024-01-01 01:00"]).tz_localize("Europe/Paris")))
0    1704067200000
Name: ts, dtype: int64
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_EPOCH = pd.Timestamp(0, tz="UTC")
_ONE_MS = pd.Timedelta(milliseconds=1)


def _from_datetimes(values: pd.Series) -> pd.Series:
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")
    return (values - _EPOCH) // _ONE_MS


def to_epoch_ms(series: pd.Series, name: str | None = None) -> pd.Series:
    """Convert datetimes (any unit; tz-aware, or naive meaning UTC), integer ms, or ISO
    strings to int64 epoch ms. Raises ``ValueError`` naming the column on bad values."""
    column = name or series.name or "ts"
    if pd.api.types.is_bool_dtype(series):
        raise ValueError(f"column {column!r}: booleans are not times")
    if pd.api.types.is_numeric_dtype(series):
        if series.isna().any():
            raise ValueError(f"column {column!r}: missing time at row {series.isna().idxmax()!r}")
        if pd.api.types.is_float_dtype(series) and not bool((series == np.floor(series)).all()):
            raise ValueError(f"column {column!r}: epoch milliseconds must be whole numbers")
        return series.astype(np.int64).rename(column)
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series):
        parsed = series
    else:
        try:
            parsed = pd.to_datetime(series, utc=True, format="ISO8601")
        except (ValueError, TypeError, OverflowError) as exc:
            reason = str(exc).splitlines()[0]
            raise ValueError(f"column {column!r}: not a timestamp: {reason}") from None
    if parsed.isna().any():
        bad = series[parsed.isna()].iloc[0]
        raise ValueError(f"column {column!r}: missing or unparsable time {bad!r}")
    return _from_datetimes(parsed).astype(np.int64).rename(column)
