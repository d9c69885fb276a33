"""A backtest's numbers per period, as one tidy DataFrame (like Fairlearn's MetricFrame).

Columns: ``period`` (the period's start, UTC), ``model`` (``candidate``, ``baseline``, ...),
``attribute``, ``group``, ``metric``, ``value``, ``n`` (the sample size behind the value),
``ci_low``, ``ci_high`` (95%). One row per number:

| attribute | group | metric | n | interval |
| --- | --- | --- | --- | --- |
| ``all`` | ``all`` | ``events`` (scored), ``examples`` (labelled) | itself | none |
| ``all`` | ``all`` | ``roc_auc`` | examples | Hanley & McNeil |
| ``all`` | ``all`` | ``log_loss``, ``calibration_error`` | examples | bootstrap |
| ``all`` | ``all`` | ``positive_rate``, ``selection_rate`` | examples | Wilson |
| each | each group | ``selection_rate``, ``true_positive_rate``, | its denominator | Wilson |
| | | ``false_positive_rate`` | | |
| each | ``all`` | ``demographic_parity_ratio``, | examples | bootstrap |
| | | ``equalized_odds_difference`` | | |

Every statistic is the promotion gates' own: :func:`governance.evaluation.performance`
(ROC AUC, log loss) and :func:`governance.evaluation.impact` (group rates, parity ratio,
equalized odds difference, with rates null below ``min_group_examples``, as the gates see
them). Intervals are from :mod:`monitors.intervals`; the bootstrap resamples a period's
labelled examples ``bootstrap`` times with a fixed seed, so the frame is reproducible.

Periods are aligned to the Unix epoch (like tumbling windows): an event at ``ts`` belongs
to the period starting at ``ts - ts % period_ms``; examples are counted in the period
of their event (when they were scored), not of their label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from governance.evaluation import impact, performance
from monitors.intervals import (
    auc_interval,
    calibration_error,
    percentile_interval,
    wilson,
)
from monitors.performance import log_loss

COLUMNS = ["period", "model", "attribute", "group", "metric", "value", "n", "ci_low",
           "ci_high"]
ALL = "all"
NAN = float("nan")
#: Period lengths :func:`auto_period_ms` chooses from, in milliseconds.
NICE_PERIODS_MS = [m * 60_000 for m in (1, 5, 15, 60, 180, 360, 720, 1440, 10080, 43200)]


def auto_period_ms(first_ms: int, last_ms: int, max_periods: int = 12) -> int:
    """The shortest of 1 min, 5 min, 15 min, 1 h, 3 h, 6 h, 12 h, 1 d, 7 d, 30 d that cuts
    ``[first_ms, last_ms]`` into at most ``max_periods`` periods.

    >>> auto_period_ms(0, 40 * 3_600_000) // 3_600_000
    6
    """
    for period in NICE_PERIODS_MS:
        if last_ms // period - first_ms // period + 1 <= max_periods:
            return period
    return NICE_PERIODS_MS[-1]


def _value(x: float | None) -> float:
    return NAN if x is None else float(x)


def metric_frame(scored: pd.DataFrame, *, attributes: Mapping[str, Sequence[str]],
                 min_group_examples: int, period_ms: int | None = None,
                 model: str = "candidate", bootstrap: int = 200, seed: int = 0,
                 score_col: str = "score", decision_col: str = "decision") -> pd.DataFrame:
    """The tidy frame of a backtest's ``scored`` events (see the module docstring).

    ``period_ms`` None: one period over the whole history. ``score_col``/``decision_col``
    pick whose scores are judged (``served_score``/``served_decision``: the champions').
    """
    ts = scored["ts"].to_numpy(dtype="int64")
    if period_ms is None:
        starts = np.full(len(ts), ts.min() if len(ts) else 0)
    else:
        starts = ts - ts % period_ms
    rows: list[tuple[Any, ...]] = []
    rng = np.random.default_rng(seed)
    for start in np.unique(starts):
        in_period = scored[starts == start]
        period = pd.Timestamp(int(start), unit="ms", tz="UTC")
        rows += [(period, model, *r) for r in _period_rows(
            in_period, attributes, min_group_examples, bootstrap, rng, score_col,
            decision_col)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["n"] = frame["n"].astype("int64")
    return frame


def _period_rows(frame: pd.DataFrame, attributes: Mapping[str, Sequence[str]],
                 minimum: int, bootstrap: int, rng: np.random.Generator,
                 score_col: str, decision_col: str) -> list[tuple[Any, ...]]:
    labelled = frame[frame["label"].notna()]
    s = labelled[score_col].to_numpy(dtype=np.float64)
    d = labelled[decision_col].to_numpy(dtype=np.int64)
    y = labelled["label"].to_numpy(dtype=np.int64)
    groups = labelled[list(attributes)].to_dict(orient="records")
    n = len(y)
    perf = performance(s.tolist(), y.tolist())
    imp = impact(d.tolist(), y.tolist(), groups, attributes, minimum)
    boot = _bootstrap(s, d, y, groups, attributes, minimum, bootstrap, rng)
    auc = _value(perf.roc_auc)
    out: list[tuple[Any, ...]] = [
        (ALL, ALL, "events", float(len(frame)), len(frame), NAN, NAN),
        (ALL, ALL, "examples", float(n), n, NAN, NAN),
        (ALL, ALL, "roc_auc", auc, n,
         *auc_interval(auc, positives=perf.positives, negatives=perf.negatives)),
        (ALL, ALL, "log_loss", _value(perf.log_loss), n, *boot["log_loss"]),
        (ALL, ALL, "calibration_error", calibration_error(s, y) if n else NAN, n,
         *boot["calibration_error"]),
        (ALL, ALL, "positive_rate", y.mean() if n else NAN, n,
         *wilson(int(y.sum()), n)),
        (ALL, ALL, "selection_rate", d.mean() if n else NAN, n, *wilson(int(d.sum()), n)),
    ]
    for attribute, stats in imp.items():
        for group, r in stats.groups.items():
            for metric, value, hits, trials in (
                ("selection_rate", r.selection_rate, r.selected, r.examples),
                ("true_positive_rate", r.true_positive_rate, r.true_positives, r.positives),
                ("false_positive_rate", r.false_positive_rate, r.false_positives,
                 r.negatives),
            ):
                interval = (NAN, NAN) if value is None else wilson(hits, trials)
                out.append((attribute, group, metric, _value(value), trials, *interval))
        out.append((attribute, ALL, "demographic_parity_ratio",
                    _value(stats.demographic_parity_ratio), n,
                    *boot[f"demographic_parity_ratio[{attribute}]"]))
        out.append((attribute, ALL, "equalized_odds_difference",
                    _value(stats.equalized_odds_difference), n,
                    *boot[f"equalized_odds_difference[{attribute}]"]))
    return out


def _bootstrap(s: np.ndarray, d: np.ndarray, y: np.ndarray, groups: list[dict[str, str]],
               attributes: Mapping[str, Sequence[str]], minimum: int, times: int,
               rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the statistics without a closed-form interval."""
    names = ["log_loss", "calibration_error",
             *(f"{m}[{a}]" for a in attributes
               for m in ("demographic_parity_ratio", "equalized_odds_difference"))]
    n = len(y)
    if n == 0 or times <= 0:
        return {name: (NAN, NAN) for name in names}
    replicates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(times):
        i = rng.integers(0, n, n)
        replicates["log_loss"].append(log_loss(s[i], y[i]))
        replicates["calibration_error"].append(calibration_error(s[i], y[i]))
        for attribute, stats in impact(d[i].tolist(), y[i].tolist(), [groups[k] for k in i],
                                       attributes, minimum).items():
            replicates[f"demographic_parity_ratio[{attribute}]"].append(
                _value(stats.demographic_parity_ratio))
            replicates[f"equalized_odds_difference[{attribute}]"].append(
                _value(stats.equalized_odds_difference))
    return {name: percentile_interval(values) for name, values in replicates.items()}


def side_by_side(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (period, attribute, group, metric), in the frame's order, and for each
    model (in order of appearance) its ``value``, ``ci_low``, ``ci_high`` and ``n``
    (columns ``candidate_value``, ...); then ``delta``, the first model's value minus the
    second's, when there are two models."""
    keys = ["period", "attribute", "group", "metric"]
    models = list(dict.fromkeys(frame["model"]))
    order = frame[keys].drop_duplicates()
    wide = order.set_index(keys)
    for model in models:
        part = frame[frame["model"] == model].set_index(keys)
        part = part[["value", "ci_low", "ci_high", "n"]].add_prefix(f"{model}_")
        wide = wide.join(part, how="left")
    if len(models) == 2:
        wide["delta"] = wide[f"{models[0]}_value"] - wide[f"{models[1]}_value"]
    return wide.reset_index()
