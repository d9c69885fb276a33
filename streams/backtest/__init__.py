"""Backtests of a config over history (``streambed evaluate``) and the HTML report's data.

The pure core is :mod:`governance.backtest` and :mod:`governance.metric_frame`; this
package reads history (files or Kafka) and replays each config's features.
"""

from typing import Any

_HISTORY = ("ConfigBacktest", "History", "evaluate", "load_history", "metrics_of",
            "normalise_labels", "run_backtest")


def __getattr__(name: str) -> Any:
    """The backtest's names, imported on first use: :mod:`streams.backtest.history`
    brings River and SciPy (seconds of start-up), which the command line's parser, and
    every other command (``replay`` among them), does not need."""
    if name in _HISTORY:
        from streams.backtest import history

        return getattr(history, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConfigBacktest",
    "History",
    "evaluate",
    "load_history",
    "metrics_of",
    "normalise_labels",
    "run_backtest",
]
