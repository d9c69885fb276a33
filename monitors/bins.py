"""Bins fixed from a reference, so current values are counted in the reference's terms.

Layout of the (fine) bins of a :class:`Binning`; index 0 is always the null bin:

- numeric: ``[null, (-inf, q_1], (q_1, q_2], ..., (q_m, +inf)]`` where ``q_k`` are the
  distinct reference quantiles at ``k / ks_bins``. Bins are closed on the right, so a
  value equal to a quantile falls in the bin that ends there, and a value repeated in the
  reference (a point mass) gets a bin of its own rather than being split. PSI uses the
  coarser bins at ``j / bins`` quantiles: each is a union of fine bins, so one count per
  event serves both statistics.
- categorical: ``[null, c_1, ..., c_m, other]`` for the ``max_categories`` most frequent
  reference categories; PSI bins and fine bins are the same.

A value that cannot be placed (a string for a numeric variable) counts as null.

>>> b = Binning.from_reference(ReferenceSample.from_values([1, 2, 3, 4]), bins=2, ks_bins=4)
>>> b.edges
(1.75, 2.5, 3.25)
>>> [b.index(v) for v in (None, 1, 2.5, 2.6, 99)]
[0, 1, 2, 3, 4]
>>> b.coarse(b.reference_counts).tolist()     # null, (-inf, 2.5], (2.5, inf)
[0.0, 2.0, 2.0]
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

from monitors.reference import ReferenceSample, is_null
from monitors.sketch import VariableSketch

NULL_BIN = 0


@dataclass(frozen=True)
class Binning:
    """Fine bins fixed from a reference, their reference counts and the PSI grouping."""

    kind: str
    #: Numeric: the fine bin edges (distinct reference quantiles).
    edges: tuple[float, ...]
    #: Categorical: category → bin index.
    categories: dict[str, int]
    #: Reference counts in each fine bin (sketch points weighted back to the full count).
    reference_counts: np.ndarray
    #: Fine bin index → PSI bin index.
    coarse_of_fine: np.ndarray

    @property
    def n_bins(self) -> int:
        return len(self.reference_counts)

    @property
    def n_coarse(self) -> int:
        return int(self.coarse_of_fine.max()) + 1

    def index(self, value: object) -> int:
        """The fine bin of ``value`` (cheap: a dict lookup or a bisection)."""
        if is_null(value):
            return NULL_BIN
        if self.kind == "categorical":
            return self.categories.get(str(value), self.n_bins - 1)
        if isinstance(value, str):
            return NULL_BIN
        return 1 + bisect_left(self.edges, float(value))  # type: ignore[arg-type]

    def counts(self, values: list[object]) -> np.ndarray:
        """How many of ``values`` fall in each fine bin (a batch at a time: numpy, no loop
        over values for numeric bins)."""
        if self.kind == "categorical":
            index = [self.index(v) for v in values]
            return np.bincount(index, minlength=self.n_bins).astype(np.float64)
        x = np.fromiter((_as_float(v) for v in values), dtype=np.float64, count=len(values))
        bins = 1 + np.searchsorted(np.asarray(self.edges), x, side="left")
        bins[np.isnan(x)] = NULL_BIN
        return np.bincount(bins, minlength=self.n_bins).astype(np.float64)

    def coarse(self, fine_counts: np.ndarray) -> np.ndarray:
        """Fine-bin counts summed into the PSI bins."""
        return np.bincount(self.coarse_of_fine, weights=fine_counts, minlength=self.n_coarse)

    @classmethod
    def from_reference(
        cls, sample: ReferenceSample, bins: int, ks_bins: int, max_categories: int = 20
    ) -> Binning:
        if ks_bins % bins:
            raise ValueError(f"ks_bins ({ks_bins}) must be a multiple of bins ({bins})")
        if sample.kind == "categorical":
            return cls._categorical(sample, max_categories)
        return cls._numeric(sample, bins, ks_bins)

    @classmethod
    def from_sketch(cls, sketch: VariableSketch, bins: int) -> Binning:
        """The bins of a version's stored reference (:mod:`monitors.sketch`): its fine bins
        are the sketch's, the PSI bins every ``ks_bins / bins``-th quantile.

        >>> nulls = VariableSketch.from_values([None, None, None])
        >>> b = Binning.from_sketch(nulls, 10)
        >>> b.edges, b.reference_counts.tolist(), b.index(3.5), b.index(None)
        ((), [3.0, 0.0], 1, 0)
        """
        if sketch.kind == "categorical":
            return cls._categories(sketch.nulls, sketch.categories, sketch.other)
        # A sketch of nulls only has no quantiles: one bin for every value, and the nulls.
        ks_bins = len(sketch.quantiles) + 1 if sketch.quantiles else bins
        if sketch.quantiles and ks_bins % bins:
            raise ValueError(
                f"the stored reference has {ks_bins} fine bins, not a multiple of "
                f"monitors.drift.bins ({bins}): set drift.bins to a divisor of {ks_bins}"
            )
        quantiles = np.asarray(sketch.quantiles, dtype=np.float64)
        edges, coarse_of_fine = _numeric_layout(quantiles, bins, ks_bins)
        counts = np.asarray([sketch.nulls, *sketch.counts], dtype=np.float64)
        return cls("numeric", edges, {}, counts, coarse_of_fine)

    @classmethod
    def _categorical(cls, sample: ReferenceSample, max_categories: int) -> Binning:
        kept = list(sample.categories)[:max_categories]
        kept_counts = {c: sample.categories[c] for c in kept}
        return cls._categories(sample.nulls, kept_counts, sample.count - sum(kept_counts.values()))

    @classmethod
    def _categories(cls, nulls: int, kept: dict[str, int], other: int) -> Binning:
        names = list(kept)
        counts = [float(nulls)] + [float(kept[c]) for c in names] + [float(other)]
        return cls(
            kind="categorical",
            edges=(),
            categories={c: i + 1 for i, c in enumerate(names)},
            reference_counts=np.asarray(counts),
            coarse_of_fine=np.arange(len(counts)),
        )

    @classmethod
    def _numeric(cls, sample: ReferenceSample, bins: int, ks_bins: int) -> Binning:
        values = np.asarray(sample.values, dtype=np.float64)
        if len(values):
            quantiles = np.quantile(values, np.arange(1, ks_bins) / ks_bins)
        else:
            quantiles = np.empty(0)
        edges, coarse_of_fine = _numeric_layout(quantiles, bins, ks_bins)
        counts = np.zeros(len(edges) + 2)
        counts[NULL_BIN] = sample.nulls
        if len(values):
            placed = 1 + np.searchsorted(np.asarray(edges), values, side="left")
            counts += np.bincount(placed, minlength=len(counts)) * (sample.count / len(values))
        return cls(
            kind="numeric",
            edges=edges,
            categories={},
            reference_counts=counts,
            coarse_of_fine=coarse_of_fine,
        )


def _numeric_layout(quantiles: np.ndarray, bins: int,
                    ks_bins: int) -> tuple[tuple[float, ...], np.ndarray]:
    """Fine edges (the distinct quantiles) and each fine bin's PSI bin (null bin first)."""
    step = ks_bins // bins
    fine = np.unique(quantiles)
    coarse = np.unique(quantiles[step - 1 :: step])
    edges = tuple(float(e) for e in fine)
    uppers = [*edges, float("inf")]
    coarse_of_fine = [0] + [1 + int(np.searchsorted(coarse, u, side="left")) for u in uppers]
    return edges, np.asarray(coarse_of_fine)


def _as_float(value: object) -> float:
    """A numeric bin's input as a float; null and non-numbers are NaN (the null bin)."""
    if value is None or isinstance(value, str):
        return float("nan")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
