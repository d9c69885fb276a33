"""Reference distributions: what "normal" looked like, per variable, and their JSON file.

A :class:`ReferenceSample` keeps what drift needs of one variable's reference values: the
number of values and of nulls, and either the sorted numeric values (all of them, or an
evenly spaced quantile sketch of at most ``max_values`` points when there are more) or
the counts of the most frequent categories plus an 'other' count. A variable is
categorical when any of its values is a string; numbers and booleans are numeric. None
and NaN are nulls.

The replay CLI writes a reference file from a training set with :func:`write_reference`;
the worker loads it with :func:`load_reference` (``monitors.drift.reference.source: file``).

>>> s = ReferenceSample.from_values([3, 1, None, 2, float("nan")])
>>> s.kind, s.count, s.nulls, s.values
('numeric', 3, 2, (1.0, 2.0, 3.0))
>>> ReferenceSample.from_values(["web", "web", "branch", None]).categories
{'web': 2, 'branch': 1}
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "ref.json")
>>> write_reference(path, {"amount": [10.0, 20.0, None]}, scores=[0.1, 0.9])
>>> ref = load_reference(path)
>>> ref.features["amount"].values, ref.prediction.count
((10.0, 20.0), 2)
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

FORMAT = "streambed-reference"
FORMAT_VERSION = 1
#: Numeric values kept per variable in a reference; more are reduced to a quantile sketch.
MAX_VALUES = 10_000
#: Categories kept per variable in a reference file; the rest are counted as 'other'.
MAX_CATEGORIES = 1_000

Kind = Literal["numeric", "categorical"]


def is_null(value: object) -> bool:
    """None and NaN are nulls (pandas' NA is turned into None before it gets here)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class ReferenceSample:
    """One variable's reference: counts plus sorted values or category counts."""

    kind: Kind
    #: Non-null values the reference was built from (the sketch may hold fewer points).
    count: int
    nulls: int
    #: Numeric: sorted values, or an evenly spaced quantile sketch of them.
    values: tuple[float, ...] = ()
    #: Categorical: the most frequent categories and their counts.
    categories: dict[str, int] = field(default_factory=dict)
    #: Categorical: values of the categories not kept.
    other: int = 0

    @property
    def size(self) -> int:
        """All events in the reference, nulls included."""
        return self.count + self.nulls

    @classmethod
    def from_values(
        cls,
        values: Iterable[Any],
        max_values: int = MAX_VALUES,
        max_categories: int = MAX_CATEGORIES,
    ) -> ReferenceSample:
        values = list(values)
        present = [v for v in values if not is_null(v)]
        nulls = len(values) - len(present)
        if any(isinstance(v, str) for v in present):
            counts = Counter(str(v) for v in present)
            kept = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories])
            return cls(
                kind="categorical",
                count=len(present),
                nulls=nulls,
                categories=kept,
                other=len(present) - sum(kept.values()),
            )
        ordered = np.sort(np.asarray(present, dtype=np.float64))
        if len(ordered) > max_values:
            ordered = ordered[np.round(np.linspace(0, len(ordered) - 1, max_values)).astype(int)]
        return cls(
            kind="numeric",
            count=len(present),
            nulls=nulls,
            values=tuple(float(v) for v in ordered),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "count": self.count, "nulls": self.nulls}
        if self.kind == "numeric":
            data["values"] = list(self.values)
        else:
            data["categories"] = self.categories
            data["other"] = self.other
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceSample:
        return cls(
            kind=data["kind"],
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            values=tuple(float(v) for v in data.get("values", ())),
            categories={str(k): int(v) for k, v in data.get("categories", {}).items()},
            other=int(data.get("other", 0)),
        )


@dataclass(frozen=True)
class Reference:
    """A reference file's content: per-feature samples and, optionally, the scores'."""

    features: dict[str, ReferenceSample]
    prediction: ReferenceSample | None = None


def _columns(frame_or_values: Any, columns: Sequence[str] | None) -> dict[str, list[Any]]:
    """Plain lists per column, from a pandas DataFrame or a mapping of sequences."""
    if hasattr(frame_or_values, "columns") and hasattr(frame_or_values, "dtypes"):
        frame = frame_or_values
        names = list(columns) if columns is not None else [
            str(c) for c in frame.columns if frame[c].dtype.kind not in "mM"
        ]
        return {
            name: frame[name].astype(object).where(frame[name].notna(), None).tolist()
            for name in names
        }
    mapping: Mapping[str, Sequence[Any]] = frame_or_values
    names = list(columns) if columns is not None else list(mapping)
    return {name: list(mapping[name]) for name in names}


def write_reference(
    path: str | Path,
    frame_or_values: Any,
    *,
    scores: Sequence[float] | None = None,
    columns: Sequence[str] | None = None,
) -> None:
    """Write a reference file from a DataFrame or a mapping ``name → values``.

    ``columns`` picks the feature columns (default: every column but datetimes); ``scores``
    optionally gives the reference for prediction drift.
    """
    prediction = None if scores is None else ReferenceSample.from_values(list(scores))
    data = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "features": {
            name: ReferenceSample.from_values(values).to_json()
            for name, values in _columns(frame_or_values, columns).items()
        },
        "prediction": None if prediction is None else prediction.to_json(),
    }
    Path(path).write_text(json.dumps(data, indent=1))


def load_reference(path: str | Path) -> Reference:
    """Read a file written by :func:`write_reference`; raise ValueError if it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"reference file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"reference file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a streambed reference file (format {FORMAT!r})")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: reference format version {data.get('version')} unsupported")
    prediction = data.get("prediction")
    return Reference(
        features={k: ReferenceSample.from_json(v) for k, v in data["features"].items()},
        prediction=None if prediction is None else ReferenceSample.from_json(prediction),
    )
