"""``streambed replay --engine dask``: the same replay, partitioned over a Dask cluster.

The driver reads the history in batches
and accepts it as the local engine does (:class:`~streams.replay.accepted.Acceptance`:
column-wise validation, every rejection counted, late events taken out with each Kafka
partition's watermark carried in arrival order), and spills the accepted events to disk
by a hash of the entity id (:class:`~streams.replay.pipeline.Spill`, Arrow IPC files in
``OUT/_spill-*``, beside the dataset; removed at the end): the driver holds one batch at a
time, never the history. Lateness is settled by then, so an entity's features depend on
its own events only and both orders cut by entity: ``partitions`` parts (at least 4),
one Dask task each, which reads its part's file, replays it with the local engine's
kernel (:func:`~streams.replay.partition.replay_partition`, then
:class:`~streams.replay.history.RowFinisher` for time bounds and labels) and writes its
rows as one file of a Parquet dataset (``OUT/part-00003.parquet``, by the local engine's
:class:`~streams.replay.pipeline.RowsWriter`).

Arrival order read ``--from-kafka`` maps Kafka partitions to tasks instead: each task
reads its own Kafka partition (the offsets the driver fixed, :func:`topic_partition`)
and accepts it there (lateness is per Kafka partition): the driver reads no event.

Each part holds every event of its entities in arrival order, so each row equals the
local engine's (tested, compared sorted by ``entity_id, ts, event_id``, dtypes
included).

What scales: entities (parts spread over workers; a task's memory is bounded by
``memory_budget_bytes`` per worker process: a part larger than that is cut again in the
task, and a hot entity replayed in chunks with its state carried, exactly as the local
engine does, :mod:`streams.replay.chunked`), and for arrival order from Kafka,
partitions. What does not: one hot entity (its events are one task's: bounded in memory,
but replayed at the online engine's speed, on one core), a Kafka partition's task (it
replays its partition at once, in memory), and, for files, the driver's single pass
(read, validate, spill: one process, about the local engine's first pass). ``OUT`` must
be on a file system every worker reads and writes (a shared volume on a real cluster).
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
from streams.replay.chunked import BucketReplay
from streams.replay.history import RowFinisher, output_columns
from streams.replay.partition import Order, replay_partition
from streams.replay.pipeline import DEFAULT_MEMORY_BUDGET, RowsWriter, Spill, bucket_capacity
from streams.replay.sources import RawRecord
from streams.replay.topic import TopicHistory

#: Default number of entity buckets (tasks): at least 4, a few per worker.
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
    #: Entities too large for the task's budget, replayed in chunks (and their events).
    hot_entities: int = 0
    hot_events: int = 0


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
    def hot_entities(self) -> int:
        return sum(p.hot_entities for p in self.parts)

    @property
    def files(self) -> list[str]:
        return [p.path for p in self.parts if p.path]


def spill_parts(config: Config, source: Iterable[RawRecord] | Any, order: Order,
                partitions: int, directory: str | Path, progress: bool = False
                ) -> tuple[Acceptance, Spill]:
    """Accept ``source`` (lateness taken out for arrival order) and spill the accepted
    events to ``directory`` by entity bucket (each part in arrival order). Returns the
    acceptance with its counts and the spill (written, files kept until closed)."""
    acceptance = Acceptance(config, drop_late=order == "arrival", progress=progress)
    spill = Spill(config, partitions, str(directory), prefix="_spill-")
    try:
        for frame in acceptance.frames(source):
            if len(frame):
                spill.add(frame)
        spill.finish_writing()
    except BaseException:
        spill.close()
        raise
    return acceptance, spill


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


def replay_spilled_part(config: Config, bucket: int, path: str, events: int, out_dir: str,
                        *, labels: pd.DataFrame | None, order: Order, since_ms: int | None,
                        until_ms: int | None, attributes: list[str],
                        memory_budget_bytes: int | None = None,
                        bucket_events: int | None = None) -> PartResult:
    """One task: one part's spilled events (``path``, ``events`` rows) replayed as the
    local engine replays a bucket: at once when it fits the worker's budget, otherwise
    cut again by entity and its hot entities replayed in chunks (``bucket_events``
    overrides the events the budget affords: tests cut small parts with it). Its rows
    are written as one Parquet file, a row group per piece."""
    capacity = bucket_events or bucket_capacity(memory_budget_bytes or DEFAULT_MEMORY_BUDGET)
    cutter = BucketReplay(config, order, attributes, capacity)
    finish = RowFinisher(labels, None, since_ms, until_ms)
    target = Path(out_dir) / f"part-{bucket:05d}.parquet"
    writer = RowsWriter(target)
    spill = Spill.of_file(config, path, events)
    try:
        for frame in cutter.replay_spilled(spill, 0):
            rows = finish(frame).drop(columns="_seq")
            if len(rows):
                writer.write(rows)
    finally:
        writer.close()
        spill.close()
    assert cutter.cuts is not None
    return PartResult(bucket, writer.rows, finish.outside,
                      str(target) if writer.rows else None,
                      hot_entities=cutter.cuts.hot_entities, hot_events=cutter.cuts.hot_events)


def replay_part(config: Config, bucket: int, events: pd.DataFrame, out_dir: str, *,
                labels: pd.DataFrame | None, order: Order, since_ms: int | None,
                until_ms: int | None, attributes: list[str]) -> PartResult:
    """The local kernel over one part, its rows written as one Parquet file."""
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
                   progress: bool = False, memory_budget_bytes: int | None = None,
                   bucket_events: int | None = None) -> DaskReplayResult:
    """Replay ``source`` (raw records, an events file or a topic read, as for the local
    engine) into the Parquet dataset ``out`` (a directory of part files), one Dask task
    per part. ``out`` must be a path every worker can write (a shared file system on a
    real cluster). ``memory_budget_bytes`` bounds each worker process's replay of a
    part (``bucket_events``: the events a task replays at once, for tests)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    out_dir = Path(out)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"{out_dir} exists and is not an empty directory: the Dask engine "
                         f"writes a Parquet dataset (a directory of part files) there")
    kept = output_columns(config, attributes)
    from_kafka = isinstance(source, TopicHistory) and order == "arrival"
    result = DaskReplayResult()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = str(out_dir.resolve())
    spill = None
    if not from_kafka:  # the driver reads, accepts and spills; tasks read their part
        acceptance, spill = spill_parts(config, source, order, partitions, target, progress)
        tally = acceptance.tally
        result = DaskReplayResult(tally.received, tally.rejected, tally.examples)
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
            assert spill is not None
            futures = [client.submit(replay_spilled_part, config, bucket,
                                     str(spill.paths[bucket]), int(spill.counts[bucket]),
                                     target, order=order, **bounds,
                                     memory_budget_bytes=memory_budget_bytes,
                                     bucket_events=bucket_events, pure=False)
                       for bucket in range(spill.buckets) if spill.counts[bucket]]
        result.parts = sorted(client.gather(futures), key=lambda p: p.bucket)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        if spill is not None:
            spill.close()
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
    if result.hot_entities:
        summary += (f"; {result.hot_entities} hot entit(ies) "
                    f"({sum(p.hot_events for p in result.parts)} events) replayed in chunks")
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
