"""Drift of one variable (a feature or the score): reference, bins, sliding window, stats.

A :class:`VariableDrift` either starts from a fixed reference (a file) or collects the
first ``reference.events`` values it observes and freezes them into one. Once it has a
reference, every observed value is counted in the reference's fine bins inside a ring of
time buckets (:class:`~monitors.buckets.TimeBuckets`), so memory stays bounded. The
statistics (PSI on the coarse bins, KS on the fine bins) are computed only when asked.

>>> from monitors.config import DriftConfig
>>> cfg = DriftConfig(reference={"events": 10}, bins=2, ks_bins=2, min_window_events=4)
>>> d = VariableDrift(cfg)
>>> for i in range(10):
...     d.observe(float(i), now=0.0)            # the first 10 values become the reference
>>> for v in (7.0, 8.0, 9.0, 9.5):
...     d.observe(v, now=1.0)                   # all current values in the upper half
>>> s = d.statistics(now=1.0)
>>> s.ks, round(s.psi, 3), s.status     # (1e-4 - .5)·ln(1e-4/.5) + (1 - .5)·ln(1/.5)
(0.5, 4.604, 'alert')
>>> s.detected                          # the window [0, 900) is not complete yet
False
>>> for v in [8.0, 9.0] * 10:
...     d.observe(v, now=2.0)
>>> s = d.statistics(now=900.0)         # [0, 900) complete, but the dispersion of window
>>> s.detected, s.statistic             # counts is not known before 3 pairs of windows
(False, nan)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from monitors.bins import Binning
from monitors.buckets import TimeBuckets
from monitors.chisquare import chi2_sf, chi_square_test, f_quantile, f_sf
from monitors.config import DriftConfig
from monitors.ks import ks
from monitors.psi import psi
from monitors.reference import ReferenceSample
from monitors.sketch import VariableSketch

NAN = float("nan")


@dataclass(frozen=True)
class DriftStats:
    """One variable's drift as of a refresh; NaN statistics while there is too little data."""

    psi: float
    ks: float
    status: str  # "pending" | "ok" | "warn" | "alert"
    kind: str | None
    reference_source: str  # "first_events" | "file" | "champion"
    reference_events: int
    window_events: int
    #: The drift test on the last complete disjoint window (NaN: no verdict).
    statistic: float = NAN
    threshold: float = NAN
    p_value: float = NAN
    detected: bool = False
    #: Events in the judged window.
    tested_events: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Dispersion:
    """The estimated dispersion ``phi`` of window counts and its degrees of freedom."""

    phi: float
    df: float


UNKNOWN_DISPERSION = Dispersion(NAN, 0.0)
NO_DISPERSION = Dispersion(1.0, math.inf)  # independent events, known: the plain test


@lru_cache(maxsize=4096)
def _f_quantile(p: float, d1: int, d2: float) -> float:
    """F quantiles repeat (the same level, bins and pairs every window): cached."""
    return f_quantile(p, d1, d2)


@dataclass(frozen=True)
class DriftVerdict:
    """One window judged against a reference: the test, its effect size, the verdict."""

    statistic: float
    threshold: float
    p_value: float
    psi: float
    events: int
    detected: bool


NO_VERDICT = DriftVerdict(NAN, NAN, NAN, NAN, 0, False)


def drift_verdict(binning: Binning, window_counts: np.ndarray, alpha: float,
                  config: DriftConfig, spread: Dispersion = NO_DISPERSION) -> DriftVerdict:
    """Chi-square test of a window's fine-bin counts, on the PSI bins, at level ``alpha``,
    corrected by the estimated dispersion (:func:`dispersion`): the threshold is
    ``phi · df · F_{1-alpha}(df, spread.df)`` (``phi · χ²_{1-alpha}(df)`` when it is known).

    Drift is detected when the statistic exceeds the threshold AND the window's PSI is at
    least ``config.min_effect_psi``; below ``config.min_window_events`` events, or with an
    unknown dispersion (NaN), no verdict.

    >>> b = Binning.from_reference(ReferenceSample.from_values(list(range(100))), 2, 2)
    >>> cfg = DriftConfig(bins=2, ks_bins=2, min_window_events=20)
    >>> drift_verdict(b, b.counts([10] * 5 + [90] * 5), 0.01, cfg).detected   # too few
    False
    >>> v = drift_verdict(b, b.counts([10] * 10 + [90] * 30), 0.01, cfg)
    >>> round(v.statistic, 2), round(v.threshold, 2), v.detected
    (7.29, 6.63, True)
    """
    events = int(window_counts.sum())
    if (events < config.min_window_events or binning.reference_counts.sum() <= 0
            or math.isnan(spread.phi)):
        return DriftVerdict(NAN, NAN, NAN, NAN, events, False)
    reference = binning.coarse(binning.reference_counts)
    current = binning.coarse(window_counts)
    test = chi_square_test(reference, current, alpha)
    effect = psi(reference, current, config.psi_epsilon)
    if test.df < 1:
        return DriftVerdict(NAN, NAN, NAN, effect, events, False)
    if math.isinf(spread.df):
        threshold = spread.phi * test.threshold
        p_value = chi2_sf(test.statistic / spread.phi, test.df)
    else:
        threshold = spread.phi * test.df * _f_quantile(1.0 - alpha, test.df, spread.df)
        p_value = f_sf(test.statistic / test.df / spread.phi, test.df, spread.df)
    detected = test.statistic > threshold and effect >= config.min_effect_psi
    return DriftVerdict(test.statistic, threshold, p_value, effect, events, detected)


class TumblingCounts:
    """Counts in the current disjoint window (``window_seconds`` aligned to the epoch) and
    the last ``keep`` complete ones, newest last: what the drift test judges, each window
    once, and what the dispersion is estimated from.

    >>> w = TumblingCounts(10.0, width=2)
    >>> w.add(1.0, np.array([1.0, 0.0])); w.add(9.0, np.array([0.0, 2.0]))
    >>> w.last_complete(now=9.5) is None, w.last_complete(now=10.0).tolist()
    (True, [1.0, 2.0])
    >>> w.last_complete(now=25.0).tolist()      # window [10, 20) passed with nothing in it
    [0.0, 0.0]
    >>> len(w.history)
    2
    """

    def __init__(self, window_seconds: float, width: int, keep: int = 10) -> None:
        self.window_seconds = window_seconds
        self.width = width
        self._id: int | None = None
        self._counts = np.zeros(width)
        #: Complete windows, consecutive, newest last.
        self.history: deque[np.ndarray] = deque(maxlen=keep)
        #: Counts that arrived for a window already complete (out-of-order time).
        self.dropped = 0

    def _window_id(self, now: float) -> int:
        return math.floor(now / self.window_seconds)

    def _roll(self, window_id: int) -> None:
        if self._id is None:
            self._id = window_id
        elif window_id > self._id:
            self.history.append(self._counts)
            for _ in range(min(window_id - self._id - 1, self.history.maxlen or 0)):
                self.history.append(np.zeros(self.width))  # windows with nothing observed
            self._id, self._counts = window_id, np.zeros(self.width)

    def add(self, now: float, counts: np.ndarray) -> None:
        window_id = self._window_id(now)
        self._roll(window_id)
        if self._id is not None and window_id < self._id:
            self.dropped += int(counts.sum())
            return
        self._counts += counts

    def add_one(self, now: float, column: int) -> None:
        window_id = self._window_id(now)
        self._roll(window_id)
        if self._id is not None and window_id < self._id:
            self.dropped += 1
            return
        self._counts[column] += 1.0

    def last_complete(self, now: float) -> np.ndarray | None:
        """The counts of the newest window that ended at or before ``now`` (None before any)."""
        if self._id is not None:
            self._roll(self._window_id(now))
        return self.history[-1] if self.history else None


def dispersion(binning: Binning, history: Sequence[np.ndarray],
               config: DriftConfig) -> Dispersion:
    """How much more the window counts vary than independent events would (``phi``, at
    least 1), from consecutive complete windows; unknown while fewer than
    ``config.min_dispersion_pairs`` pairs of full windows are known.

    Windowed features of one entity are correlated from event to event (a 6-hour maximum
    stays the same over several events), so binned counts vary more than multinomially and
    a plain chi-square test would alarm far above its level. Under no drift, the
    chi-square statistic between two consecutive windows is about ``phi·χ²(df)``, so
    ``phi`` is estimated as ``Σ X²_pair / Σ df_pair`` over the recent pairs (the
    first-order design-effect correction of Rao & Scott 1981, JASA 76), leaving out a pair
    above 3 times the median pair (a step change shows in the one pair that straddles it,
    and must not blind the test to itself). The estimate has ``Σ df_pair`` degrees of
    freedom: the test compares ``(X² / df) / phi`` with the F(df, Σ df_pair) quantile,
    which holds the level although ``phi`` is estimated.

    >>> b = Binning.from_reference(ReferenceSample.from_values(list(range(100))), 2, 2)
    >>> cfg = DriftConfig(bins=2, ks_bins=2, min_window_events=20, min_dispersion_pairs=2)
    >>> windows = [b.counts([10] * 20 + [90] * 20), b.counts([10] * 30 + [90] * 10)]
    >>> math.isnan(dispersion(b, windows, cfg).phi)
    True
    >>> windows.append(b.counts([10] * 22 + [90] * 18))
    >>> d = dispersion(b, windows, cfg)
    >>> round(d.phi, 2), d.df                   # (5.33 + 3.52) / 2 pairs of 1 df
    (4.42, 2.0)
    """
    pairs = []
    for older, newer in zip(history, list(history)[1:], strict=False):
        if min(older.sum(), newer.sum()) < config.min_window_events:
            continue
        test = chi_square_test(binning.coarse(older), binning.coarse(newer), 0.5)
        if test.df >= 1:
            pairs.append((test.statistic, test.df))
    if len(pairs) < config.min_dispersion_pairs:
        return UNKNOWN_DISPERSION
    median = float(np.median([x / df for x, df in pairs]))
    kept = [(x, df) for x, df in pairs if x / df <= 3.0 * max(median, 1.0)]
    total = float(sum(df for _, df in kept))
    return Dispersion(max(1.0, sum(x for x, _ in kept) / total), total)


def drift_status(psi_value: float, ks_value: float, config: DriftConfig) -> str:
    """The worse of the PSI and KS levels; "pending" when PSI is not available."""
    if psi_value != psi_value:  # NaN
        return "pending"
    levels = [
        (psi_value, config.psi_warn, config.psi_alert),
        (ks_value, config.ks_warn, config.ks_alert),
    ]
    if any(v >= alert for v, _, alert in levels):
        return "alert"
    if any(v >= warn for v, warn, _ in levels):
        return "warn"
    return "ok"


class VariableDrift:
    """Reference and current binned distribution of one variable."""

    def __init__(self, config: DriftConfig, reference: ReferenceSample | None = None,
                 alpha: float | None = None) -> None:
        self.config = config
        #: The level of each window's test (default: ``config.false_alarm_rate``).
        self.alpha = config.false_alarm_rate if alpha is None else alpha
        self.fixed = reference is not None
        self._source = "file" if reference is not None else "first_events"
        self._pending: list[Any] = []
        #: Values still to skip before the reference starts (windowed features warm up).
        self._warmup_left = 0 if reference is not None else config.reference.warmup_events
        self.binning: Binning | None = None
        self.window: TimeBuckets | None = None
        self.tumbling: TumblingCounts | None = None
        self.reference_events = 0
        if reference is not None:
            self._freeze(reference)

    @property
    def reference_source(self) -> str:
        return self._source

    def _freeze(self, sample: ReferenceSample) -> None:
        cfg = self.config
        self._use(Binning.from_reference(sample, cfg.bins, cfg.ks_bins, cfg.max_categories),
                  sample.size)

    def _use(self, binning: Binning, events: int) -> None:
        cfg = self.config
        self.binning = binning
        self.window = TimeBuckets(cfg.window_seconds, cfg.window_buckets, binning.n_bins)
        self.tumbling = TumblingCounts(cfg.window_seconds, binning.n_bins,
                                       keep=cfg.dispersion_windows + 1)
        self.reference_events = events
        self._pending = []

    def set_sketch(self, sketch: VariableSketch) -> None:
        """Compare from now on with a stored reference (the champion's): the windows start
        afresh in its bins, and the reference no longer moves."""
        self._use(Binning.from_sketch(sketch, self.config.bins), sketch.size)
        self.fixed = True
        self._source = "champion"

    def observe(self, value: Any, now: float) -> None:
        """Count one value: into the reference while it is being collected, else the window."""
        if self.binning is None or self.window is None:
            if self._warmup_left > 0:
                self._warmup_left -= 1
                return
            self._pending.append(value)
            if len(self._pending) >= self.config.reference.events:
                self._freeze(ReferenceSample.from_values(self._pending))
            return
        index = self.binning.index(value)
        self.window.add(now, index)
        if self.tumbling is not None:
            self.tumbling.add_one(now, index)

    def observe_many(self, values: list[Any], now: float) -> None:
        """Count a batch of values observed at ``now`` (the same as one by one)."""
        if self.binning is None or self.window is None:
            for i, value in enumerate(values):
                self.observe(value, now)
                if self.binning is not None:
                    self.observe_many(values[i + 1:], now)
                    return
            return
        counts = self.binning.counts(values)
        self.window.add_counts(now, counts)
        if self.tumbling is not None:
            self.tumbling.add(now, counts)

    def reset(self) -> None:
        """Forget a reference taken from first events (a file reference is kept)."""
        if not self.fixed:
            self.binning = None
            self.window = None
            self.tumbling = None
            self._pending = []
            self.reference_events = 0

    def statistics(self, now: float) -> DriftStats:
        binning, window = self.binning, self.window
        if binning is None or window is None:
            return DriftStats(
                NAN, NAN, "pending", None, self.reference_source, len(self._pending), 0
            )
        current = window.totals(now)
        n = int(current.sum())
        psi_value = ks_value = NAN
        if n >= self.config.min_window_events and binning.reference_counts.sum() > 0:
            psi_value = psi(
                binning.coarse(binning.reference_counts),
                binning.coarse(current),
                self.config.psi_epsilon,
            )
            if binning.kind == "numeric":
                ks_value = ks(binning.reference_counts, current)
        verdict = self.verdict(now)
        return DriftStats(
            psi=psi_value,
            ks=ks_value,
            status=drift_status(psi_value, ks_value, self.config),
            kind=binning.kind,
            reference_source=self.reference_source,
            reference_events=self.reference_events,
            window_events=n,
            statistic=verdict.statistic,
            threshold=verdict.threshold,
            p_value=verdict.p_value,
            detected=verdict.detected,
            tested_events=verdict.events,
        )

    def verdict(self, now: float, alpha: float | None = None) -> DriftVerdict:
        """The drift test on the last complete disjoint window (at ``alpha``, default the
        drift's own level)."""
        if self.binning is None or self.tumbling is None:
            return NO_VERDICT
        counts = self.tumbling.last_complete(now)
        if counts is None:
            return NO_VERDICT
        level = self.alpha if alpha is None else alpha
        spread = dispersion(self.binning, self.tumbling.history, self.config)
        return drift_verdict(self.binning, counts, level, self.config, spread)
