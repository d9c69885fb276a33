"""``streambed evaluate``: backtest a candidate config (and a baseline) over history."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import pandas as pd

PERIOD_HELP = ("period length, e.g. 1h, 6h, 1d (default auto: at most 12 periods, each "
               "1m/5m/15m/1h/3h/6h/12h/1d/7d/30d)")


def add_history_arguments(p: argparse.ArgumentParser) -> None:
    """--events/--labels or --from-kafka (shared by evaluate and report)."""
    p.add_argument("--broker", help="override the config's broker URL")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", help="events file: .jsonl, .csv or .parquet")
    src.add_argument("--from-kafka", action="store_true",
                     help="read the configured events and labels topics")
    p.add_argument("--labels", help="with --events: labels file (event_id, label, ts)")
    p.add_argument("--since", help="with --from-kafka: from this time (epoch ms or ISO-8601)")
    p.add_argument("--until", help="with --from-kafka: up to this time, exclusive")
    p.add_argument("--order", choices=["arrival", "event-time"], default="arrival",
                   help="features as the worker computed them (arrival) or the ideal")
    p.add_argument("--period", default="auto", help=PERIOD_HELP)
    p.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap resamples for the intervals of log loss, calibration, "
                        "parity ratio and equalized odds (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def add_evaluate_parser(sub: Any, config_of: Any) -> None:
    """``config_of(args)``: the validated config of the command's ``--config``."""
    e = sub.add_parser("evaluate", help="backtest a candidate config's features and model "
                                        "over history, per period, beside a baseline")
    e.add_argument("--config", required=True, help="the candidate config")
    e.add_argument("--baseline", help="the current config, evaluated side by side")
    add_history_arguments(e)
    e.add_argument("--out", help="also write the tidy frame: .csv or .parquet")
    e.set_defaults(func=lambda args: _evaluate(args, config_of))


def load_from_args(args: argparse.Namespace, config: Any) -> Any:
    """The history the arguments name (files or Kafka)."""
    from streams.backtest.history import load_history
    from streams.replay import parse_time_ms

    if args.from_kafka and args.labels:
        raise ValueError("--labels goes with --events; --from-kafka reads the labels topic")
    if not args.from_kafka and (args.since or args.until):
        raise ValueError("--since and --until need --from-kafka")
    return load_history(
        config, events=args.events, labels=args.labels, from_kafka=args.from_kafka,
        since_ms=parse_time_ms(args.since) if args.since else None,
        until_ms=parse_time_ms(args.until) if args.until else None,
        progress=not args.no_progress)


def _evaluate(args: argparse.Namespace, config_of: Any) -> int:
    from streams.backtest.history import metrics_of, period_of, run_backtest
    from streams.config import load_config

    candidate = config_of(args)
    baseline = load_config(args.baseline, broker=args.broker) if args.baseline else None
    began = time.monotonic()
    try:
        history = load_from_args(args, candidate)
        runs = {"candidate": run_backtest(candidate, history, args.order)}
        if baseline is not None:
            runs["baseline"] = run_backtest(baseline, history, args.order)
        period_ms = period_of(list(runs.values()), args.period)
        frame = metrics_of(runs, period_ms, bootstrap=args.bootstrap, seed=args.seed)
    except (ValueError, FileNotFoundError, TimeoutError) as exc:
        print(f"streambed: {exc}", file=sys.stderr)
        return 1
    for name, r in runs.items():
        labels = " ".join(f"{k}={v}" for k, v in sorted(r.run.labels.items())) or "none"
        decisions = ", ".join(f"{a.version.rsplit('-', 1)[-1]} {a.decision.value}"
                              for a in r.run.audit)
        print(f"{name}: {r.config.name} feature_set={r.config.features.identity} "
              f"events={len(r.run.scored)} labels: {labels}")
        print(f"  the learner would have decided: {decisions or 'nothing'}")
    rest = (f"percentile bootstrap x{args.bootstrap} for the rest" if args.bootstrap > 0
            else "none for the rest (--bootstrap 0)")
    print(f"history: {history.source}; period {period_ms // 60_000} min; 95% intervals "
          f"(Wilson for rates, Hanley-McNeil for ROC AUC, {rest})\n")
    print(format_table(frame))
    if args.out:
        write_metrics(frame, args.out)
        print(f"\nwrote {args.out}")
    print(f"evaluate: {time.monotonic() - began:.1f}s")
    return 0


def _cell(value: float, low: float, high: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.0f}" if float(value).is_integer() and abs(value) >= 2 else f"{value:.3f}"
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def format_table(frame: pd.DataFrame) -> str:
    """Per period, one line per number: each model's value [95% CI] and n, then delta."""
    from governance.metric_frame import side_by_side

    wide = side_by_side(frame)
    models = list(dict.fromkeys(frame["model"]))
    blocks = []
    for period, part in wide.groupby("period", sort=True):
        table = pd.DataFrame({"attribute": part["attribute"], "group": part["group"],
                              "metric": part["metric"]})
        for m in models:
            table[m] = [_cell(v, lo, hi) for v, lo, hi in zip(
                part[f"{m}_value"], part[f"{m}_ci_low"], part[f"{m}_ci_high"], strict=True)]
            table[f"n_{m}"] = part[f"{m}_n"].astype("Int64").astype(str).str.replace(
                "<NA>", "-")
        if "delta" in part:
            table["delta"] = ["-" if math.isnan(d) else f"{d:+.3f}" for d in part["delta"]]
        header = f"== period {pd.Timestamp(period):%Y-%m-%d %H:%M} UTC"
        blocks.append(header + "\n" + table.to_string(index=False))
    return "\n\n".join(blocks)


def write_metrics(frame: pd.DataFrame, path: str) -> None:
    """The tidy frame as CSV or Parquet (what ``streambed report --evaluation`` reads)."""
    from streams.replay import write_frame

    write_frame(frame, path)


def read_metrics(path: str) -> pd.DataFrame:
    """A tidy frame written by ``streambed evaluate --out``."""
    from governance.metric_frame import COLUMNS

    frame = pd.read_parquet(path) if path.endswith((".parquet", ".pq")) else pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not an evaluation (no column(s) {missing}); write one "
                         f"with `streambed evaluate --out`")
    frame["period"] = pd.to_datetime(frame["period"], utc=True)
    return frame
