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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from monitors.bins import Binning
from monitors.buckets import TimeBuckets
from monitors.config import DriftConfig
from monitors.ks import ks
from monitors.psi import psi
from monitors.reference import ReferenceSample

NAN = float("nan")


@dataclass(frozen=True)
class DriftStats:
    """One variable's drift as of a refresh; NaN statistics while there is too little data."""

    psi: float
    ks: float
    status: str  # "pending" | "ok" | "warn" | "alert"
    kind: str | None
    reference_source: str  # "first_events" | "file"
    reference_events: int
    window_events: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    def __init__(self, config: DriftConfig, reference: ReferenceSample | None = None) -> None:
        self.config = config
        self.fixed = reference is not None
        self._pending: list[Any] = []
        #: Values still to skip before the reference starts (windowed features warm up).
        self._warmup_left = 0 if reference is not None else config.reference.warmup_events
        self.binning: Binning | None = None
        self.window: TimeBuckets | None = None
        self.reference_events = 0
        if reference is not None:
            self._freeze(reference)

    @property
    def reference_source(self) -> str:
        return "file" if self.fixed else "first_events"

    def _freeze(self, sample: ReferenceSample) -> None:
        cfg = self.config
        self.binning = Binning.from_reference(sample, cfg.bins, cfg.ks_bins, cfg.max_categories)
        self.window = TimeBuckets(cfg.window_seconds, cfg.window_buckets, self.binning.n_bins)
        self.reference_events = sample.size
        self._pending = []

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
        self.window.add(now, self.binning.index(value))

    def observe_many(self, values: list[Any], now: float) -> None:
        """Count a batch of values observed at ``now`` (the same as one by one)."""
        if self.binning is None or self.window is None:
            for i, value in enumerate(values):
                self.observe(value, now)
                if self.binning is not None:
                    self.observe_many(values[i + 1:], now)
                    return
            return
        self.window.add_counts(now, self.binning.counts(values))

    def reset(self) -> None:
        """Forget a reference taken from first events (a file reference is kept)."""
        if not self.fixed:
            self.binning = None
            self.window = None
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
        return DriftStats(
            psi=psi_value,
            ks=ks_value,
            status=drift_status(psi_value, ks_value, self.config),
            kind=binning.kind,
            reference_source=self.reference_source,
            reference_events=self.reference_events,
            window_events=n,
        )
