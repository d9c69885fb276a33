"""The drift reference stored with a model version: a fixed-size sketch per variable.

When the learner cuts a version it sketches the last ``drift.reference.examples`` training
examples it learned from (and their scores, rescored by the frozen version), so every
scorer, and every restart, compares live traffic with the same reference: the
champion's. A :class:`VariableSketch` keeps, for one variable:

- numeric: the reference quantiles at ``k / ks_bins`` (k = 1 .. ks_bins − 1, repeats kept so
  the coarse bins can be derived), the count of examples in each distinct fine bin
  ``(-inf, u_1], (u_1, u_2], ..., (u_m, +inf)``, and the nulls;
- categorical: the counts of the ``max_categories`` most frequent categories (names of at
  most :data:`MAX_CATEGORY_CHARS` characters), the count of the rest (``other``), the nulls.

Its size depends on the configuration only (``ks_bins``, ``max_categories``), never on the
number of examples: :func:`max_encoded_bytes` bounds the JSON encoding of a whole
:class:`DriftReference`, and a test holds real encodings under it.

:func:`reference_at_cut` is the fallback rule: a version cut from fewer than
``min_examples`` examples inherits its parent's reference.

>>> s = VariableSketch.from_values([1.0, 2.0, 3.0, None, 4.0], ks_bins=2)
>>> s.quantiles, s.counts, s.nulls
((2.5,), (2, 2), 1)
>>> VariableSketch.from_json(s.to_json()) == s
True
>>> ref = DriftReference.from_columns({"channel": ["web", "web", "branch"]}, scores=[0.1, 0.7, 0.4],
...                                   ks_bins=2)
>>> ref.features["channel"].categories, ref.score.size
({'web': 2, 'branch': 1}, 3)
>>> DriftReference.from_json(ref.to_json()) == ref
True
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from monitors.reference import is_null

FORMAT = "streambed-drift-reference"
FORMAT_VERSION = 1
#: Category names longer than this are counted in ``other`` (keeps the sketch bounded).
MAX_CATEGORY_CHARS = 64
#: Longest JSON text of a float (``-1.2345678901234567e-308``).
_MAX_FLOAT_CHARS = 24

Kind = Literal["numeric", "categorical"]


def _numbers(values: Iterable[Any]) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=np.float64)


@dataclass(frozen=True)
class VariableSketch:
    """One variable's reference as quantile bins with counts, or category counts."""

    kind: Kind
    nulls: int
    #: Numeric: the ``ks_bins − 1`` reference quantiles, in order, repeats kept.
    quantiles: tuple[float, ...] = ()
    #: Numeric: examples in each distinct fine bin (one more than the distinct quantiles).
    counts: tuple[int, ...] = (0,)
    #: Categorical: the most frequent categories and their counts, most frequent first.
    categories: dict[str, int] = field(default_factory=dict)
    #: Categorical: examples of the categories not kept.
    other: int = 0

    @property
    def size(self) -> int:
        """All examples sketched, nulls included."""
        if self.kind == "numeric":
            return self.nulls + sum(self.counts)
        return self.nulls + sum(self.categories.values()) + self.other

    @classmethod
    def from_values(cls, values: Iterable[Any], ks_bins: int = 100,
                    max_categories: int = 20) -> VariableSketch:
        """Sketch ``values`` (None and NaN are nulls; any string makes it categorical)."""
        values = list(values)
        present = [v for v in values if not is_null(v)]
        nulls = len(values) - len(present)
        if any(isinstance(v, str) for v in present):
            counts = Counter(str(v) for v in present)
            named = [(k, n) for k, n in counts.items() if len(k) <= MAX_CATEGORY_CHARS]
            kept = dict(sorted(named, key=lambda kv: (-kv[1], kv[0]))[:max_categories])
            return cls("categorical", nulls, categories=kept,
                       other=len(present) - sum(kept.values()))
        x = _numbers(present)
        if len(x) == 0:
            return cls("numeric", nulls)
        quantiles = np.quantile(x, np.arange(1, ks_bins) / ks_bins)
        fine = np.unique(quantiles)
        placed = np.searchsorted(fine, x, side="left")
        counts = np.bincount(placed, minlength=len(fine) + 1)
        return cls("numeric", nulls, quantiles=tuple(float(q) for q in quantiles),
                   counts=tuple(int(n) for n in counts))

    def to_json(self) -> dict[str, Any]:
        if self.kind == "numeric":
            return {"kind": "numeric", "nulls": self.nulls, "quantiles": list(self.quantiles),
                    "counts": list(self.counts)}
        return {"kind": "categorical", "nulls": self.nulls, "categories": dict(self.categories),
                "other": self.other}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "sketch") -> VariableSketch:
        """Decode (and check) a sketch; ValueError naming ``where`` if it is not one."""
        try:
            kind = data["kind"]
            nulls = _count(data["nulls"])
            if kind == "numeric":
                quantiles = tuple(float(q) for q in data["quantiles"])
                counts = tuple(_count(n) for n in data["counts"])
                if len(counts) != len(set(quantiles)) + 1 or list(quantiles) != sorted(quantiles):
                    raise ValueError("counts must be one per distinct fine bin, quantiles sorted")
                return cls("numeric", nulls, quantiles=quantiles, counts=counts)
            if kind == "categorical":
                categories = {str(k): _count(v) for k, v in data["categories"].items()}
                return cls("categorical", nulls, categories=categories,
                           other=_count(data["other"]))
            raise ValueError(f"kind {kind!r} is neither numeric nor categorical")
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{where}: not a drift sketch ({exc!r})") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a count must be a non-negative integer, not {value!r}")
    return value


@dataclass(frozen=True)
class DriftReference:
    """A version's drift reference: one sketch per watched feature and one of the scores."""

    #: Training examples sketched (the last ``drift.reference.examples`` at the cut).
    examples: int
    features: dict[str, VariableSketch]
    score: VariableSketch | None = None
    #: Impact: per ``attribute=group``, the favourable / unfavourable decisions of that
    #: group's examples (:func:`impact_sketches`), what a drift pause tests group rates on.
    impact: dict[str, VariableSketch] = field(default_factory=dict)

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[Any]],
                     scores: Sequence[float] | None = None, *, ks_bins: int = 100,
                     max_categories: int = 20) -> DriftReference:
        """Sketch feature columns (name → values, one per example) and the scores."""
        sizes = {len(v) for v in columns.values()}
        if scores is not None:
            sizes.add(len(scores))
        if len(sizes) > 1:
            raise ValueError(f"columns differ in length: {sorted(sizes)}")
        return cls(
            examples=sizes.pop() if sizes else 0,
            features={name: VariableSketch.from_values(values, ks_bins, max_categories)
                      for name, values in columns.items()},
            score=None if scores is None else VariableSketch.from_values(scores, ks_bins),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "examples": self.examples,
            "features": {k: v.to_json() for k, v in self.features.items()},
            "score": None if self.score is None else self.score.to_json(),
            "impact": {k: v.to_json() for k, v in self.impact.items()},
        }

    def encode(self) -> bytes:
        """The compact JSON bytes (what :func:`max_encoded_bytes` bounds)."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReference:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"not a streambed drift reference (format {FORMAT!r})")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"drift reference version {data.get('version')!r} unsupported "
                             f"(this streambed reads version {FORMAT_VERSION})")
        score = data.get("score")
        return cls(
            examples=_count(data["examples"]),
            features={str(k): VariableSketch.from_json(v, f"features.{k}")
                      for k, v in data["features"].items()},
            score=None if score is None else VariableSketch.from_json(score, "score"),
            impact={str(k): VariableSketch.from_json(v, f"impact.{k}")
                    for k, v in data.get("impact", {}).items()},
        )


FAVOURABLE, UNFAVOURABLE = "favourable", "unfavourable"


def impact_key(attribute: str, group: str) -> str:
    """The key of one group's impact sketch: ``attribute=group``."""
    return f"{attribute}={group}"


def impact_sketches(groups: Mapping[str, Sequence[str]],
                    favourable: Sequence[bool]) -> dict[str, VariableSketch]:
    """Per ``attribute=group`` (bounded group labels, as :func:`monitors.impact.group_of`
    gives them), the favourable and unfavourable decisions of that group's examples.

    >>> s = impact_sketches({"group": ["A", "A", "B"]}, [True, False, True])
    >>> s["group=A"].categories, s["group=B"].categories
    ({'favourable': 1, 'unfavourable': 1}, {'favourable': 1})
    """
    out: dict[str, VariableSketch] = {}
    for attribute, values in groups.items():
        members: dict[str, list[str]] = {}
        for group, good in zip(values, favourable, strict=True):
            members.setdefault(group, []).append(FAVOURABLE if good else UNFAVOURABLE)
        for group, outcomes in sorted(members.items()):
            out[impact_key(attribute, group)] = VariableSketch.from_values(outcomes)
    return out


def reference_at_cut(own: DriftReference, parent: DriftReference | None,
                     min_examples: int) -> DriftReference:
    """The reference a new version stores: its own sketch if it was cut from at least
    ``min_examples`` examples, else its parent's (else its own, the best there is).

    >>> small, big = DriftReference(10, {}), DriftReference(900, {})
    >>> reference_at_cut(small, big, 500).examples, reference_at_cut(big, small, 500).examples
    (900, 900)
    >>> reference_at_cut(small, None, 500).examples
    10
    """
    if own.examples >= min_examples or parent is None:
        return own
    return parent


def max_encoded_bytes(feature_names: Sequence[str], *, ks_bins: int, max_categories: int,
                      max_examples: int, impact_keys: Sequence[str] = ()) -> int:
    """An upper bound of :meth:`DriftReference.encode`'s length for these features (each
    numeric or categorical, whichever is larger), the score, the impact sketches of
    ``impact_keys`` (``attribute=group``, :func:`impact_key`) and up to ``max_examples``.

    >>> max_encoded_bytes(["amount"], ks_bins=100, max_categories=20, max_examples=2000)
    15982
    """
    count = len(str(max_examples)) + 1  # digits and a comma
    numeric = 60 + (ks_bins - 1) * (_MAX_FLOAT_CHARS + 1) + ks_bins * count
    # A category name of MAX_CATEGORY_CHARS characters, each escaped as \\uXXXX at worst.
    categorical = 60 + max_categories * (MAX_CATEGORY_CHARS * 6 + 4 + count)
    per_variable = max(numeric, categorical)
    names = sum(len(json.dumps(n)) + 2 for n in feature_names)
    # Each impact sketch: two categories (favourable, unfavourable) and its key.
    impact = sum(len(json.dumps(k)) + 2 + 100 + 2 * count for k in impact_keys)
    return 132 + names + (len(feature_names) + 1) * per_variable + impact
