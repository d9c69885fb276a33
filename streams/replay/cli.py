"""``streambed replay``: history (Kafka topics or files) → a point-in-time training set.

Every argument is checked before any work: a usage error is one line on stderr and exit
status 2. A replay that accepts nothing, or yields no rows, fails with status 1 and shows
why with examples; otherwise status 0.
"""

from __future__ import annotations

import argparse
import atexit
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.config import Config

EPILOG = """\
order:
  arrival     what the worker computed: each partition in offset order, late events (older
              than the partition's watermark minus event.allowed_lateness) left out. Records
              of a file keep their file order within a partition; the partition is the one
              Kafka's default partitioner (murmur2 of the entity key's UTF-8 bytes) gives
              with topics.partitions, or the file's 'partition' column when it has one. So a
              file replays exactly as it would after being produced to the topic in file
              order: a file sorted by entity is not an arrival order (use event-time).
  event-time  the ideal: every accepted event, applied in event-time order.

time bounds (--since/--until, epoch ms or ISO-8601 with an offset, e.g. 2026-01-01T00:00Z):
  on EVENT time, never broker time: rows are the events with since <= ts < until; every
  event read feeds the features. With --from-kafka, reading starts at the offsets whose
  broker timestamp is since - allowed_lateness - warmup, and each partition stops once its
  watermark passes until + allowed_lateness (later records before --until would be late).

split (--split "train:<2026-01-10T00:00Z,valid:<2026-01-12T00:00Z,test"):
  one file per part by event time (--out ds.parquet writes ds.train.parquet, ...; or put
  {part} in --out). With --gap D the next part starts D after the previous ends; an example
  whose label became known at or after the next part's start is dropped.

exit status: 0 done; 1 nothing accepted, no rows, or a source failed; 2 usage or config error.
"""


class UsageError(ValueError):
    """A bad command line: reported in one line, exit status 2, before any work."""


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """argparse's own usage errors in one line (no usage block), exit status 2."""
    def error(message: str) -> None:
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign,assignment]


def add_replay_parser(sub: Any, config_of: Any) -> None:
    """``config_of(args)``: the validated config of the command's ``--config``."""
    r = sub.add_parser(
        "replay", help="replay history into a point-in-time training set (Parquet/CSV)",
        description="Replay history (a file or the configured Kafka topics) through the "
                    "worker's validation and feature definitions into a training set.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    one_line_errors(r)
    r.add_argument("--config", required=True)
    r.add_argument("--broker", help="override the config's broker URL")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", help="events file: .jsonl, .csv or .parquet")
    src.add_argument("--from-kafka", action="store_true", help="read the configured topics")
    r.add_argument("--since", help="keep events with event time >= this (epoch ms or "
                                   "ISO-8601 with an offset)")
    r.add_argument("--until", help="keep events with event time < this")
    r.add_argument("--warmup", help="with --from-kafka --since: also read this much earlier "
                                    "history (e.g. 1d) so windows have their events")
    r.add_argument("--labels", help="labels file, or 'kafka' for the labels topic; "
                                    "one row per labelled event")
    r.add_argument("--with-online", action="store_true",
                   help="with --from-kafka: add online_score, online_decision and "
                        "online_model_version from the scored topic")
    r.add_argument("--order", choices=["arrival", "event-time"], default="arrival",
                   help="arrival: exactly what the worker computed (a file: row order "
                        "within the entity key's Kafka partition); event-time: the ideal")
    r.add_argument("--out", required=True, help="output file: .parquet or .csv")
    r.add_argument("--split", help="parts by event time, e.g. 'train:<T1,valid:<T2,test'")
    r.add_argument("--gap", help="with --split: time between parts, e.g. 1d")
    r.add_argument("--features", help="only these features (comma-separated names)")
    r.add_argument("--no-attributes", action="store_true",
                   help="leave the event attributes out of the output")
    r.add_argument("--reference", help="also write a drift reference (.json) of the features "
                                       "(of the first part, with --split)")
    r.add_argument("--rejects", help="also write every rejected record (where, reason, "
                                     "detail) to this .parquet or .csv file")
    r.add_argument("--memory-budget", default="1GiB",
                   help="bound on the replay's resident memory (default 1GiB; e.g. 512MiB, "
                        "4GiB): a history that does not fit is cut by entity and spilled "
                        "to a temporary directory (TMPDIR); with --engine dask, the bound "
                        "of each task's replay of its part")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--engine", choices=["local", "dask"], default="local",
                   help="dask: partition the history by entity over a Dask cluster and "
                        "write a Parquet dataset (a directory) to --out")
    r.add_argument("--scheduler", help="with --engine dask: a Dask scheduler address "
                                       "(default: a local cluster of 2 worker processes)")
    r.add_argument("--partitions", type=int, default=8,
                   help="with --engine dask: entity buckets, one task each (at least 4; "
                        "arrival order --from-kafka: one task per Kafka partition)")
    r.set_defaults(func=lambda args: _replay(args, config_of))


@dataclass
class Plan:
    """The checked command line: everything replay needs, nothing left to fail on usage."""

    config: Config
    since_ms: int | None
    until_ms: int | None
    warmup_ms: int
    outputs: dict[str | None, Path]  # part name (None: the whole frame) → file
    split: Any = None
    memory_budget_bytes: int = 1 << 30
    rejects: Path | None = None


_BYTE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 1000**2,
               "mb": 1000**2, "mib": 1 << 20, "g": 1000**3, "gb": 1000**3, "gib": 1 << 30}


def parse_bytes(text: str) -> int:
    """A size in bytes: ``1GiB``, ``512MiB``, ``2G``, ``1500000``.

    >>> parse_bytes("1GiB"), parse_bytes("512 MiB"), parse_bytes("2g")
    (1073741824, 536870912, 2000000000)
    """
    import re

    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = found.group(2).lower() if found else None
    if found is None or unit not in _BYTE_UNITS:
        raise ValueError(f"{text!r} is not a size (e.g. 1GiB, 512MiB, 2G)")
    return int(float(found.group(1)) * _BYTE_UNITS[unit])


def _time(option: str, value: str | None) -> int | None:
    from streams.replay import parse_time_ms

    if value is None:
        return None
    try:
        return parse_time_ms(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _duration(option: str, value: str | None) -> int:
    from features import parse_duration_ms

    if value is None:
        return 0
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _existing(option: str, value: str, kinds: tuple[str, ...]) -> None:
    path = Path(value)
    if path.suffix.lower() not in kinds:
        raise UsageError(f"{option} {value}: unknown file type {path.suffix or '(none)'!r}: "
                         f"use {', '.join(kinds)}")
    if not path.is_file():
        raise UsageError(f"{option} {value}: no such file")


def part_path(out: Path, part: str) -> Path:
    """Where a part of a split goes: ``{part}`` in ``out`` replaced, or ``stem.part.ext``.

    >>> part_path(Path("sets/ds.parquet"), "train").as_posix()
    'sets/ds.train.parquet'
    >>> part_path(Path("sets/{part}.csv"), "test").as_posix()
    'sets/test.csv'
    """
    if "{part}" in str(out):
        return Path(str(out).replace("{part}", part))
    return out.with_name(f"{out.stem}.{part}{out.suffix}")


def check_args(args: argparse.Namespace, config: Config) -> Plan:
    """Every usage rule, before any work; raises :class:`UsageError`."""
    from streams.replay import check_output_path, parse_split, select_features

    kafka_only = [name for name, given in (("--labels kafka", args.labels == "kafka"),
                                           ("--with-online", args.with_online),
                                           ("--warmup", args.warmup)) if given]
    if kafka_only and not args.from_kafka:
        raise UsageError(f"{', '.join(kafka_only)} need(s) --from-kafka")
    if args.warmup and not args.since:
        raise UsageError("--warmup needs --since (it reaches back before it)")
    if args.gap and not args.split:
        raise UsageError("--gap needs --split")
    if args.events:
        _existing("--events", args.events, (".jsonl", ".ndjson", ".json", ".csv", ".parquet",
                                             ".pq"))
    if args.labels and args.labels != "kafka":
        _existing("--labels", args.labels, (".jsonl", ".ndjson", ".json", ".csv", ".parquet",
                                            ".pq"))
    since, until = _time("--since", args.since), _time("--until", args.until)
    if since is not None and until is not None and since >= until:
        raise UsageError(f"--since {args.since} is not before --until {args.until}")
    warmup = _duration("--warmup", args.warmup)
    if args.reference and Path(args.reference).suffix.lower() != ".json":
        raise UsageError(f"--reference {args.reference}: a drift reference is a .json file")
    if args.features:
        try:
            config = select_features(config, [n.strip() for n in args.features.split(",")])
        except ValueError as exc:
            raise UsageError(f"--features: {exc}") from None
    try:
        from streams.replay.history import output_columns

        output_columns(config, not args.no_attributes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    split = None
    if args.split:
        try:
            split = parse_split(args.split, _duration("--gap", args.gap))
        except UsageError:
            raise
        except ValueError as exc:
            raise UsageError(f"--split: {exc}") from None
    try:
        out = check_output_path(args.out)
        outputs: dict[str | None, Path] = {None: out}
        if split is not None:
            outputs = {name: check_output_path(part_path(out, name)) for name in split.names}
    except ValueError as exc:
        raise UsageError(f"--out: {exc}") from None
    if "{part}" in args.out and split is None:
        raise UsageError("--out has {part} but there is no --split")
    if args.engine == "dask" or args.scheduler:
        from streams.replay.dask_engine import check_dask_args

        check_dask_args(args)
    try:
        budget = parse_bytes(args.memory_budget)
    except ValueError as exc:
        raise UsageError(f"--memory-budget: {exc}") from None
    rejects = None
    if args.rejects:
        try:
            rejects = check_output_path(args.rejects)
        except ValueError as exc:
            raise UsageError(f"--rejects: {exc}") from None
    return Plan(config, since, until, warmup, outputs, split, budget, rejects)


def _replay(args: argparse.Namespace, config_of: Any) -> int:

    config = config_of(args)
    try:
        plan = check_args(args, config)
    except UsageError as exc:
        print(f"streambed replay: error: {exc}", file=sys.stderr)
        return 2
    began = time.monotonic()
    try:
        result = _run(args, plan)
    except (ValueError, FileNotFoundError, TimeoutError) as exc:
        print(f"streambed replay: {exc}", file=sys.stderr)
        return 1
    return _report(args, plan, result, time.monotonic() - began)


def _run(args: argparse.Namespace, plan: Plan) -> Any:
    from streams.replay import (
        read_events_file,
        read_events_topic,
        read_labels_file,
        read_start_ms,
    )
    from streams.replay.labels import SpilledLabels, label_parts
    from streams.replay.sources import iter_labels_file
    from streams.replay.to_files import replay_to_files

    config, progress = plan.config, not args.no_progress
    if args.from_kafka:
        records = read_events_topic(config, since_ms=plan.since_ms, until_ms=plan.until_ms,
                                    warmup_ms=plan.warmup_ms, progress=progress)
    else:
        records = read_events_file(args.events, config)
    labels = online = None
    if args.labels == "kafka":
        labels = kafka_labels(config, read_start_ms(config, plan.since_ms, plan.warmup_ms),
                              plan.memory_budget_bytes if args.engine == "local" else None,
                              progress)
    elif args.labels and args.engine == "local" and \
            label_parts(args.labels, plan.memory_budget_bytes) > 1:
        # too large to hold beside the replay: on disk, by event id (removed at exit)
        labels = SpilledLabels(iter_labels_file(args.labels),
                               label_parts(args.labels, plan.memory_budget_bytes))
        atexit.register(labels.close)
    elif args.labels:
        labels = read_labels_file(args.labels)
    if args.with_online:
        online, unreadable = kafka_online(config, read_start_ms(config, plan.since_ms,
                                                                plan.warmup_ms),
                                          plan.memory_budget_bytes, progress)
        if unreadable:
            print(f"replay: {unreadable} scored record(s) could not be read; skipped",
                  file=sys.stderr)
    if args.engine == "dask":
        from streams.replay.dask_engine import replay_on_dask

        return replay_on_dask(config, records, args.out, labels=labels, order=args.order,
                              since_ms=plan.since_ms, until_ms=plan.until_ms,
                              attributes=not args.no_attributes,
                              partitions=args.partitions, scheduler=args.scheduler,
                              progress=progress,
                              memory_budget_bytes=plan.memory_budget_bytes)
    estimate = records.rows_estimate() if hasattr(records, "rows_estimate") else len(records)
    return replay_to_files(config, records, plan.outputs, order=args.order, labels=labels,
                           online=online, since_ms=plan.since_ms, until_ms=plan.until_ms,
                           attributes=not args.no_attributes, split=plan.split,
                           rejects=plan.rejects, reference_features=bool(args.reference),
                           events_estimate=estimate,
                           memory_budget_bytes=plan.memory_budget_bytes, progress=progress)


def kafka_labels(config: Config, from_broker_ms: int | None,
                 memory_budget_bytes: int | None, progress: bool = False) -> Any:
    """The labels topic's labels: in memory, or (too many for an eighth of the budget)
    read lazily and spilled by event id (:class:`~streams.replay.labels.SpilledLabels`,
    removed at exit). No budget (Dask): in memory."""
    from streams.replay import labels_from_records, read_topic
    from streams.replay.labels import SpilledLabels, topic_label_parts
    from streams.replay.sources import label_chunks
    from streams.replay.topic import TopicHistory

    if memory_budget_bytes is not None:
        topic = TopicHistory(config, config.topics.labels, from_broker_ms=from_broker_ms,
                             progress=progress)
        parts = topic_label_parts(topic.rows_estimate(), memory_budget_bytes)
        if parts > 1:
            labels = SpilledLabels(label_chunks(topic), parts)
            atexit.register(labels.close)
            return labels
    return labels_from_records(read_topic(config, config.topics.labels, progress=progress,
                                          from_broker_ms=from_broker_ms))


def kafka_online(config: Config, from_broker_ms: int | None, memory_budget_bytes: int,
                 progress: bool = False) -> tuple[Any, int]:
    """What each event got online (the scored topic) and how many records could not be
    read: in memory, or (too many for an eighth of the budget) read lazily and spilled by
    event id, as :func:`kafka_labels` does."""
    import pyarrow as pa

    from streams.replay.labels import SpilledLabels, topic_label_parts
    from streams.replay.sources import OnlineRows
    from streams.replay.topic import TopicHistory

    topic = TopicHistory(config, config.topics.scored, from_broker_ms=from_broker_ms,
                         progress=progress)
    parts = topic_label_parts(topic.rows_estimate(), memory_budget_bytes)
    if parts == 1:
        return _online_from(config, from_broker_ms, progress)
    reader = OnlineRows(topic)
    online = SpilledLabels(reader.chunks(), parts, fields={
        "online_score": pa.float64(), "online_decision": pa.int64(),
        "online_model_version": pa.string()})
    atexit.register(online.close)
    return online, reader.unreadable


def _online_from(config: Config, from_broker_ms: int | None, progress: bool
                 ) -> tuple[Any, int]:
    from streams.replay import online_from_records, read_topic

    return online_from_records(read_topic(config, config.topics.scored,
                                          from_broker_ms=from_broker_ms, progress=progress))


def _report(args: argparse.Namespace, plan: Plan, result: Any, seconds: float) -> int:
    if args.engine == "dask":
        from streams.replay.dask_engine import report_dask

        return report_dask(args, plan.config, result, seconds)
    config = plan.config
    rejected = " ".join(f"{k}={v}" for k, v in sorted(result.rejected.items())) or "none"
    summary = (f"replay: received={result.received} accepted={result.accepted} "
               f"rows={result.rows} rejected: {rejected}")
    if plan.since_ms is not None or plan.until_ms is not None:
        summary += f"; outside --since/--until (history only)={result.outside}"
    examples = [f"  e.g. {example}" for example in result.examples[:6]]
    failure = None
    if result.accepted == 0:
        failure = "nothing was accepted: every record was rejected"
        if result.received == 0:
            failure = "no records were read"
    elif result.rows == 0:
        failure = ("no rows: no accepted event has a label (do the labels' event_ids match?)"
                   if args.labels else "no rows: no accepted event is inside --since/--until")
    if failure:
        for path in plan.outputs.values():  # written as it went: nothing stays
            path.unlink(missing_ok=True)
        print(summary, file=sys.stderr)
        print(f"streambed replay: {failure}; nothing written", file=sys.stderr)
        print("\n".join(examples), file=sys.stderr)
        return 1
    lines = [summary, *examples]
    if result.rejected.get("late") and args.events and args.order == "arrival":
        lines.append(f"  note: arrival order of a file is its row order within each "
                     f"partition ({config.topics.partitions}, by entity key); if the file "
                     f"is not in arrival order, use --order event-time")
    if args.with_online:
        lines.append(f"  online: {result.online_scored} of {result.rows} rows have a "
                     f"scored record")
    if plan.split is None:
        written = [str(plan.outputs[None])]
    else:
        written = []
        for name in plan.split.names:
            rows = result.part_rows[name]
            written.append(str(plan.outputs[name]))
            dropped = result.label_too_late.get(name)
            note = f"; {dropped} dropped, label known after the next part began" \
                if dropped else ""
            empty = " (EMPTY)" if rows == 0 else ""
            lines.append(f"  {name}: {rows} rows{empty} -> {plan.outputs[name]}{note}")
        if result.in_gap:
            lines.append(f"  in a gap between parts (in no part): {result.in_gap} rows")
    if args.reference:
        from monitors import write_reference

        write_reference(args.reference, result.reference, columns=config.features.names)
        if result.reference_sampled:
            from streams.replay.to_files import REFERENCE_ROWS

            lines.append(f"  reference: a uniform sample of {REFERENCE_ROWS} rows of the "
                         f"first part (quantiles within 0.0023 in CDF, 99% confidence)")
    if plan.rejects is not None:
        written.append(f"{plan.rejects} ({sum(result.rejected.values())} rejected)")
    if result.buckets > 1:
        hot = (f"; {result.hot_entities} hot entit(ies) ({result.hot_events} events) "
               f"replayed in chunks" if result.hot_entities else "")
        lines.append(f"  memory: {result.buckets} entity buckets within --memory-budget "
                     f"{plan.memory_budget_bytes >> 20} MiB ({result.spilled_bytes >> 20} "
                     f"MiB spilled{hot}); peak RSS {result.peak_rss_bytes >> 20} MiB")
        if result.bucket_peaks:
            lines.append("  " + bucket_peaks_line(result.first_pass_peak_bytes,
                                                  result.bucket_peaks))
    lines.append(f"feature_set={config.features.identity}; wrote {', '.join(written)} "
                 f"in {seconds:.1f}s")
    print("\n".join(lines))
    return 0


def bucket_peaks_line(first_pass: int, peaks: list[tuple[int, int]]) -> str:
    """Where the peak RSS was: the first pass, then the buckets' replays (first, last,
    largest): flat when nothing held grows with the history.

    >>> line = bucket_peaks_line(300 << 20, [(400_000, 600 << 20), (10, 500 << 20),
    ...                                      (410_000, 610 << 20)])
    >>> for part in line.split(", "):
    ...     print(part)
    peak RSS by phase: first pass 300 MiB; buckets: first 600 MiB (400,000 events)
    last 610 MiB (410,000 events)
    highest 610 MiB (410,000 events) of 3
    """
    top = max(range(len(peaks)), key=lambda i: peaks[i][1])

    def at(i: int) -> str:
        return f"{peaks[i][1] >> 20} MiB ({peaks[i][0]:,} events)"

    return (f"peak RSS by phase: first pass {first_pass >> 20} MiB; buckets: first {at(0)}, "
            f"last {at(len(peaks) - 1)}, highest {at(top)} of {len(peaks)}")
