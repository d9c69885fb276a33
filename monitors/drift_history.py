"""Drift over history: PSI and KS of each feature per period against one reference.

The same statistics as the online monitor (:class:`monitors.drift.VariableDrift`), applied
to a replayed history instead of a sliding window: the reference is the first
``reference.events`` values after ``reference.warmup_events`` (or the reference file, when
``reference.source`` is ``file``), binned by :class:`~monitors.bins.Binning`; each
period's values are counted in those bins; PSI on the coarse bins, KS on the fine ones
(numeric features only); NaN below ``min_window_events`` values in a period.

>>> import pandas as pd
>>> from monitors.config import DriftConfig
>>> cfg = DriftConfig(reference={"events": 10}, bins=2, ks_bins=2, min_window_events=4)
>>> frame = pd.DataFrame({"x": [float(i % 10) for i in range(20)] + [9.0] * 10})
>>> starts = [0] * 20 + [1] * 10
>>> d = drift_by_period(frame, ["x"], starts, cfg)
>>> d[["period_ms", "feature", "n"]].values.tolist(), round(float(d["psi"].iloc[1]), 3)
([[0, 'x', 20], [1, 'x', 10]], 4.604)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitors.bins import Binning
from monitors.config import DriftConfig
from monitors.drift import drift_status
from monitors.ks import ks
from monitors.psi import psi
from monitors.reference import ReferenceSample, load_reference

NAN = float("nan")
COLUMNS = ["period_ms", "feature", "psi", "ks", "n", "status", "reference_events"]


def _values(column: pd.Series) -> list[object]:
    return column.astype(object).where(column.notna(), None).tolist()


def drift_by_period(frame: pd.DataFrame, features: Sequence[str],
                    period_starts: Sequence[int], config: DriftConfig) -> pd.DataFrame:
    """One row per (period, feature): PSI, KS, the period's count and the drift status.

    ``frame`` holds the features in timeline order; ``period_starts`` gives each row's
    period (any integer key, e.g. its start in epoch ms).
    """
    starts = np.asarray(period_starts)
    reference = None
    if config.reference.source == "file" and config.reference.path is not None:
        reference = load_reference(config.reference.path).features
    rows = []
    ref = config.reference
    for name in features:
        values = _values(frame[name])
        if reference is not None and name in reference:
            sample = reference[name]
        else:
            sample = ReferenceSample.from_values(
                values[ref.warmup_events:ref.warmup_events + ref.events])
        if sample.size < ref.events and reference is None:
            sample = None  # too short a history for a reference
        binning = None if sample is None else Binning.from_reference(
            sample, config.bins, config.ks_bins, config.max_categories)
        for start in np.unique(starts):
            chosen = [v for v, s in zip(values, starts, strict=True) if s == start]
            n = len(chosen)
            p = k = NAN
            if binning is not None and n >= config.min_window_events:
                current = binning.counts(chosen)
                p = psi(binning.coarse(binning.reference_counts), binning.coarse(current),
                        config.psi_epsilon)
                if binning.kind == "numeric":
                    k = ks(binning.reference_counts, current)
            rows.append((start.item(), name, p, k, n, drift_status(p, k, config),
                         0 if sample is None else sample.size))
    return pd.DataFrame(rows, columns=COLUMNS)
