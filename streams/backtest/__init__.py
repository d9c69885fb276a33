"""Backtests of a config over history (``streambed evaluate``) and the HTML report's data.

The pure core is :mod:`governance.backtest` and :mod:`governance.metric_frame`; this
package reads history (files or Kafka) and replays each config's features.
"""

from streams.backtest.history import (
    ConfigBacktest,
    History,
    evaluate,
    load_history,
    metrics_of,
    normalise_labels,
    run_backtest,
)

__all__ = [
    "ConfigBacktest",
    "History",
    "evaluate",
    "load_history",
    "metrics_of",
    "normalise_labels",
    "run_backtest",
]
