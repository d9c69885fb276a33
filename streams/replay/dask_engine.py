"""``streambed replay --engine dask``: the same replay, partitioned over a Dask cluster.

The driver reads the history in batches and accepts it as the local engine does
(:class:`~streams.replay.accepted.Acceptance`: column-wise validation, every rejection
counted, late events taken out with each Kafka partition's watermark carried in arrival
order). The accepted events are then cut into independent parts, one Dask task each:

- ``order="event-time"``: ``partitions`` buckets by a hash of the entity id
  (:func:`~streams.replay.partition.entity_bucket`, the same on every machine);
- ``order="arrival"``: one task per Kafka partition (``_partition``: the record's own,
  or for a file the one Kafka's default partitioner gives its entity key). Read
  ``--from-kafka``, each task reads its own Kafka partition (the same offsets the driver
  fixed, :func:`topic_partition`) and accepts it there: the driver reads no event.

Each task replays its part with the local engine's kernel
(:func:`~streams.replay.partition.replay_partition`, then
:class:`~streams.replay.history.RowFinisher` for time bounds and labels) and writes its
rows as one file of a Parquet dataset (``OUT/part-00003.parquet``, written by the local
engine's :class:`~streams.replay.pipeline.RowsWriter`). A part holds every event of its
entities in arrival order, so each row equals the local engine's (tested, compared
sorted by ``entity_id, ts, event_id``, dtypes included).

What scales: entities (parts spread over workers; a task's memory is its part), and for
arrival order from Kafka, partitions. What does not: one hot entity (all its events are
one task's), and, for files and event time, the driver, which reads and validates the
history and holds the accepted events until they are sent out.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from streams.config import Config
from streams.replay.accepted import Acceptance, Rejected
from streams.replay.history import RowFinisher, output_columns
from streams.replay.partition import Order, entity_bucket, replay_partition
from streams.replay.pipeline import RowsWriter
from streams.replay.sources import RawRecord
from streams.replay.topic import TopicHistory

#: Default number of buckets for event-time replay: at least 4, a few per worker.
DEFAULT_PARTITIONS = 8
#: Worker processes of the local cluster started when no scheduler address is given.
LOCAL_WORKERS = 2


@dataclass
class PartResult:
    """What one task did: its rows, those outside the time bounds, the file it wrote;
    a task that read its own Kafka partition also counts what it received and rejected."""

    bucket: int
    rows: int
    outside: int
    path: str | None
    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[Rejected] = field(default_factory=list)


@dataclass
class DaskReplayResult:
    """The whole replay: the driver's counts and the tasks' parts."""

    received: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[Rejected] = field(default_factory=list)
    parts: list[PartResult] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.received - sum(self.rejected.values())

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    @property
    def outside(self) -> int:
        return sum(p.outside for p in self.parts)

    @property
    def files(self) -> list[str]:
        return [p.path for p in self.parts if p.path]


def accepted_parts(config: Config, source: Iterable[RawRecord] | Any, order: Order,
                   partitions: int, progress: bool = False
                   ) -> tuple[Acceptance, dict[int, pd.DataFrame]]:
    """The accepted events by task (each part in arrival order), and the acceptance with
    its counts. Event time: by entity bucket; arrival: by Kafka partition."""
    acceptance = Acceptance(config, drop_late=order == "arrival", progress=progress)
    pieces: dict[int, list[pd.DataFrame]] = {}
    for frame in acceptance.frames(source):
        if not len(frame):
            continue
        key = (frame["_partition"].to_numpy() if order == "arrival"
               else entity_bucket(frame["entity_id"].to_numpy(), partitions))
        for bucket, piece in frame.groupby(key, sort=True):
            pieces.setdefault(int(bucket), []).append(piece)
    return acceptance, {b: pd.concat(p, ignore_index=True) for b, p in pieces.items()}


def topic_partition(history: TopicHistory, partition: int) -> TopicHistory:
    """The same read of a topic, restricted to one of its partitions (same offsets)."""
    part = copy.copy(history)
    part.starts = {partition: history.starts[partition]}
    part.ends = {partition: history.ends[partition]}
    part._len = None
    return part


def replay_kafka_partition(config: Config, history: TopicHistory, out_dir: str, *,
                           labels: pd.DataFrame | None, since_ms: int | None,
                           until_ms: int | None, attributes: list[str]) -> PartResult:
    """One task of an arrival-order replay from Kafka: the worker reads its own Kafka
    partition (``history`` restricted by :func:`topic_partition`), accepts it (lateness
    against that partition's watermark, as the worker judged it) and replays it."""
    (partition,) = history.ends
    acceptance = Acceptance(config, drop_late=True)
    frames = [f for f in acceptance.frames(history) if len(f)]
    tally = acceptance.tally
    result = PartResult(partition, 0, 0, None, tally.received, tally.rejected,
                        tally.examples)
    if frames:
        done = replay_part(config, partition, pd.concat(frames, ignore_index=True), out_dir,
                           labels=labels, order="arrival", since_ms=since_ms,
                           until_ms=until_ms, attributes=attributes)
        result.rows, result.outside, result.path = done.rows, done.outside, done.path
    return result


def replay_part(config: Config, bucket: int, events: pd.DataFrame, out_dir: str, *,
                labels: pd.DataFrame | None, order: Order, since_ms: int | None,
                until_ms: int | None, attributes: list[str]) -> PartResult:
    """One task: the local kernel over one part, its rows written as one Parquet file."""
    finish = RowFinisher(labels, None, since_ms, until_ms)
    rows = finish(replay_partition(config, events, order=order, attributes=attributes))
    rows = rows.drop(columns="_seq")
    path = None
    if len(rows):
        path = str(Path(out_dir) / f"part-{bucket:05d}.parquet")
        writer = RowsWriter(Path(path))
        writer.write(rows)
        writer.close()
    return PartResult(bucket, len(rows), finish.outside, path)


def connect(scheduler: str | None, workers: int = LOCAL_WORKERS) -> tuple[Any, Any]:
    """A Dask client: to ``scheduler`` (``tcp://host:8786``), or to a new local cluster of
    ``workers`` processes (one thread each). Returns (client, cluster or None)."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def replay_on_dask(config: Config, source: Iterable[RawRecord] | Any, out: str | Path, *,
                   labels: pd.DataFrame | None = None, order: Order = "arrival",
                   since_ms: int | None = None, until_ms: int | None = None,
                   attributes: bool = True, partitions: int = DEFAULT_PARTITIONS,
                   scheduler: str | None = None, workers: int = LOCAL_WORKERS,
                   progress: bool = False) -> DaskReplayResult:
    """Replay ``source`` (raw records, an events file or a topic read, as for the local
    engine) into the Parquet dataset ``out`` (a directory of part files), one Dask task
    per part. ``out`` must be a path every worker can write (a shared file system on a
    real cluster)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    out_dir = Path(out)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"{out_dir} exists and is not an empty directory: the Dask engine "
                         f"writes a Parquet dataset (a directory of part files) there")
    kept = output_columns(config, attributes)
    from_kafka = isinstance(source, TopicHistory) and order == "arrival"
    result = DaskReplayResult()
    parts: dict[int, pd.DataFrame] = {}
    if not from_kafka:  # the driver reads and accepts; tasks get parts of the history
        acceptance, parts = accepted_parts(config, source, order, partitions, progress)
        tally = acceptance.tally
        result = DaskReplayResult(tally.received, tally.rejected, tally.examples)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = str(out_dir.resolve())
    client, cluster = connect(scheduler, workers)
    try:
        shared_labels = client.scatter(labels, broadcast=True) if labels is not None else None
        bounds = {"labels": shared_labels, "since_ms": since_ms, "until_ms": until_ms,
                  "attributes": kept}
        if from_kafka:  # each task reads its own Kafka partition
            futures = [client.submit(replay_kafka_partition, config,
                                     topic_partition(source, p), target, **bounds,
                                     pure=False)
                       for p in sorted(source.ends)]
        else:
            futures = [client.submit(replay_part, config, bucket, events, target,
                                     order=order, **bounds, pure=False)
                       for bucket, events in sorted(parts.items())]
        del parts
        result.parts = sorted(client.gather(futures), key=lambda p: p.bucket)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    for part in result.parts:
        result.received += part.received
        result.rejected += part.rejected
        result.examples += part.examples
    return result


def check_dask_args(args: argparse.Namespace) -> None:
    """The command line rules of ``--engine dask`` (raises the CLI's UsageError)."""
    from streams.replay.cli import UsageError

    if args.engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    unsupported = [name for name, given in (("--split", args.split),
                                            ("--with-online", args.with_online),
                                            ("--reference", args.reference),
                                            ("--rejects", getattr(args, "rejects", None)))
                   if given]
    if unsupported:
        raise UsageError(f"{', '.join(unsupported)}: not with --engine dask (use the local "
                         f"engine, or split the dataset afterwards)")
    if Path(args.out).suffix.lower() not in (".parquet", ".pq"):
        raise UsageError(f"--out {args.out}: --engine dask writes a Parquet dataset (a "
                         f"directory such as history.parquet)")
    if args.partitions < 4:
        raise UsageError(f"--partitions {args.partitions}: at least 4")


def report_dask(args: argparse.Namespace, config: Config, result: DaskReplayResult,
                seconds: float) -> int:
    """The CLI's summary of a Dask replay (exit status as the local engine's)."""
    rejected = " ".join(f"{k}={v}" for k, v in sorted(result.rejected.items())) or "none"
    summary = (f"replay: received={result.received} accepted={result.accepted} "
               f"rows={result.rows} rejected: {rejected}; {len(result.parts)} Dask tasks")
    if args.since or args.until:
        summary += f"; outside --since/--until (history only)={result.outside}"
    examples = [f"  e.g. {example}" for example in result.examples[:6]]
    if result.rows == 0:
        print(summary, file=sys.stderr)
        print("streambed replay: no rows; nothing written", file=sys.stderr)
        print("\n".join(examples), file=sys.stderr)
        return 1
    print("\n".join([summary, *examples]))
    print(f"feature_set={config.features.identity}; wrote {args.out}/ "
          f"({len(result.files)} Parquet files) in {seconds:.1f}s")
    return 0
