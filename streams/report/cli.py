"""``streambed report``: history (files or Kafka) → one self-contained HTML file."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any


def add_report_parser(sub: Any, config_of: Any) -> None:
    """``config_of(args)``: the validated config of the command's ``--config``."""
    from streams.backtest.cli import add_history_arguments

    r = sub.add_parser("report", help="one self-contained HTML report: impact, drift, "
                                      "model decisions and dead letters over time")
    r.add_argument("--config", required=True)
    add_history_arguments(r)
    r.add_argument("--baseline", help="also backtest this config, beside the candidate")
    r.add_argument("--evaluation", help="a tidy frame from `streambed evaluate --out` "
                                        "(instead of backtesting again; labels not needed)")
    r.add_argument("--out", required=True, help="the HTML file to write")
    r.set_defaults(func=lambda args: _report(args, config_of))


def _report(args: argparse.Namespace, config_of: Any) -> int:
    from streams.backtest.cli import load_from_args, read_metrics
    from streams.backtest.history import History, metrics_of, period_of, run_backtest
    from streams.config import load_config
    from streams.report.build import render, report_data

    config = config_of(args)
    began = time.monotonic()
    try:
        if args.evaluation and not args.from_kafka and not args.labels:
            from streams.replay import read_events_file, required_columns

            history = History(read_events_file(args.events, required_columns(config)),
                              _no_labels(), args.events)
        else:
            history = load_from_args(args, config)
        run = run_backtest(config, history, args.order)
        runs = {"candidate": run}
        if args.evaluation:
            metrics = read_metrics(args.evaluation)
            period_ms = _period_of_metrics(metrics) or period_of([run], args.period)
        else:
            if args.baseline:
                runs["baseline"] = run_backtest(load_config(args.baseline, broker=args.broker),
                                                history, args.order)
            period_ms = period_of(list(runs.values()), args.period)
            metrics = metrics_of(runs, period_ms, bootstrap=args.bootstrap, seed=args.seed)
        data = report_data(
            run, metrics, period_ms, history.source, backtest=not args.evaluation,
            production_audit=history.audit, production_versions=history.versions,
            label_outcomes={} if args.evaluation else
            {name: dict(r.run.labels) for name, r in runs.items()})
        page = render(data)
    except (ValueError, FileNotFoundError, TimeoutError) as exc:
        print(f"streambed: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    print(f"report: wrote {out} ({len(page) // 1024} KiB) in {time.monotonic() - began:.1f}s")
    return 0


def _no_labels() -> Any:
    import pandas as pd

    return pd.DataFrame({"event_id": pd.Series(dtype=str), "label": pd.Series(dtype="int64"),
                         "label_ts": pd.Series(dtype="int64")})


def _period_of_metrics(metrics: Any) -> int | None:
    """The period length of an evaluation file: the smallest gap between its periods."""
    starts = sorted(set(metrics["period"]))
    if len(starts) < 2:
        return None
    return int(min((b - a).total_seconds() for a, b in itertools.pairwise(starts)) * 1000)
