"""``streambed replay``: history (Kafka topics or files) → a point-in-time training set."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def add_replay_parser(sub: Any) -> None:
    r = sub.add_parser(
        "replay", help="replay history into a point-in-time training set (Parquet/CSV)")
    r.add_argument("--config", required=True)
    r.add_argument("--broker", help="override the config's broker URL")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", help="events file: .jsonl, .csv or .parquet")
    src.add_argument("--from-kafka", action="store_true", help="read the configured topics")
    r.add_argument("--since", help="with --from-kafka: from this time (epoch ms or ISO-8601)")
    r.add_argument("--until", help="with --from-kafka: up to this time, exclusive")
    r.add_argument("--labels", help="labels file, or 'kafka' for the labels topic; "
                                    "one row per labelled event")
    r.add_argument("--order", choices=["arrival", "event-time"], default="arrival",
                   help="arrival: exactly what the worker computed; event-time: the ideal")
    r.add_argument("--out", required=True, help="output file: .parquet or .csv")
    r.add_argument("--features", help="only these features (comma-separated names)")
    r.add_argument("--reference", help="also write a drift reference (JSON) of the features")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    from streams.cli import _config
    from streams.replay import (
        labels_from_records,
        parse_time_ms,
        read_events_file,
        read_labels_file,
        read_topic,
        replay,
        required_columns,
        select_features,
        write_frame,
    )

    config = _config(args)
    if not args.from_kafka and (args.since or args.until or args.labels == "kafka"):
        print("streambed: --since, --until and --labels kafka need --from-kafka",
              file=sys.stderr)
        return 2
    began = time.monotonic()
    try:
        if args.features:
            config = select_features(config, [n.strip() for n in args.features.split(",")])
        if args.from_kafka:
            since = parse_time_ms(args.since) if args.since else None
            until = parse_time_ms(args.until) if args.until else None
            records = read_topic(config, config.topics.events, since_ms=since, until_ms=until,
                                 progress=not args.no_progress)
        else:
            records = read_events_file(args.events, required_columns(config))
        labels = None
        if args.labels == "kafka":
            labels = labels_from_records(read_topic(config, config.topics.labels,
                                                    progress=not args.no_progress))
        elif args.labels:
            labels = read_labels_file(args.labels)
        result = replay(config, records, labels=labels, order=args.order,
                        progress=not args.no_progress)
    except (ValueError, FileNotFoundError, TimeoutError) as exc:
        print(f"streambed: {exc}", file=sys.stderr)
        return 1
    write_frame(result.frame, args.out)
    if args.reference:
        from monitors import write_reference

        write_reference(args.reference, result.frame, columns=config.features.names)
    rejected = " ".join(f"{k}={v}" for k, v in sorted(result.rejected.items())) or "none"
    print(f"replay: received={result.received} accepted={result.accepted} "
          f"rows={len(result.frame)} rejected: {rejected}; feature_set="
          f"{config.features.identity}; wrote {args.out} in {time.monotonic() - began:.1f}s")
    return 0
