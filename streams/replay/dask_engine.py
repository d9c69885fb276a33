"""``streambed replay --engine dask``: the same replay, partitioned over a Dask cluster.

Features are per entity, so a history splits into independent parts:

- ``order="event-time"``: records go to ``partitions`` buckets by a stable hash of their
  entity id (CRC-32, the same on every machine); each bucket is one Dask task.
- ``order="arrival"``: the watermark that decides lateness is per Kafka partition, so a
  whole Kafka partition is one task (a file's records get the partition Kafka's default
  partitioner gives their entity key, as the local engine does).

Each task runs :func:`streams.replay.history.replay`, the local engine itself
(validation, lateness, :func:`features.compute_features`, labels, time bounds), on its
bucket and writes its rows as one file of a Parquet dataset (``OUT/part-00003.parquet``);
the driver adds up the counts. A bucket holds every event of its entities and keeps their
arrival order, so each row equals the local engine's (tested with ``--order event-time``,
compared sorted by ``entity_id, ts, event_id``).

What scales: entities (buckets spread over workers; memory per task is its bucket).
What does not: one hot entity (all its events are one task's), and the driver, which
reads the history and hashes each record's entity before sending the buckets out.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from streams.config import Config
from streams.replay.history import Order, Rejected, ReplayResult, replay
from streams.replay.sources import KeyPartitioner, RawRecord

#: Default number of buckets for event-time replay: at least 4, a few per worker.
DEFAULT_PARTITIONS = 8
#: Worker processes of the local cluster started when no scheduler address is given.
LOCAL_WORKERS = 2


@dataclass
class PartResult:
    """What one task did: counts, a few rejected examples, the file it wrote."""

    bucket: int
    received: int
    rejected: Counter[str]
    examples: list[Rejected]
    outside: int
    rows: int
    path: str | None


@dataclass
class DaskReplayResult:
    """The whole replay: the sums of its parts, and the dataset's files."""

    parts: list[PartResult] = field(default_factory=list)

    @property
    def received(self) -> int:
        return sum(p.received for p in self.parts)

    @property
    def rejected(self) -> Counter[str]:
        return sum((p.rejected for p in self.parts), Counter())

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
    def examples(self) -> list[Rejected]:
        return [e for p in self.parts for e in p.examples]

    @property
    def files(self) -> list[str]:
        return [p.path for p in self.parts if p.path]


def entity_bucket(entity: str, partitions: int) -> int:
    """The bucket of an entity id: CRC-32 of its UTF-8 bytes modulo ``partitions``.

    >>> entity_bucket("u1", 8), entity_bucket("u1", 8) == entity_bucket("u1", 8)
    (6, True)
    """
    return zlib.crc32(entity.encode()) % partitions


def _entity_of(rec: RawRecord, entity_field: str) -> str | None:
    """The entity id as the validator reads it (None when the record has none)."""
    try:
        value = json.loads(rec.value).get(entity_field)
    except (ValueError, AttributeError):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def buckets_of(config: Config, records: Sequence[RawRecord], order: Order,
               partitions: int) -> dict[int, list[RawRecord]]:
    """Records by task, each list in arrival order. Records without an entity (they are
    rejected in any bucket) go to bucket 0."""
    out: dict[int, list[RawRecord]] = {}
    field_name = config.event.entity_field
    kafka_partition = KeyPartitioner(config.topics.partitions)
    for rec in records:
        if order == "arrival" and rec.partition is not None:
            bucket = rec.partition
        else:
            entity = _entity_of(rec, field_name)
            if entity is None:
                bucket = 0
            elif order == "arrival":
                bucket = kafka_partition(entity)
            else:
                bucket = entity_bucket(entity, partitions)
        out.setdefault(bucket, []).append(rec)
    return out


def replay_part(config: Config, bucket: int, records: list[RawRecord], out_dir: str, *,
                labels: pd.DataFrame | None, order: Order, since_ms: int | None,
                until_ms: int | None, attributes: bool) -> PartResult:
    """One task: the local replay of one bucket, its rows written as one Parquet file."""
    result: ReplayResult = replay(config, records, labels=labels, order=order,
                                  since_ms=since_ms, until_ms=until_ms,
                                  attributes=attributes)
    path = None
    if len(result.frame):
        path = str(Path(out_dir) / f"part-{bucket:05d}.parquet")
        result.frame.to_parquet(path, index=False)
    return PartResult(bucket, result.received, result.rejected, result.examples,
                      result.outside, len(result.frame), path)


def connect(scheduler: str | None, workers: int = LOCAL_WORKERS) -> tuple[Any, Any]:
    """A Dask client: to ``scheduler`` (``tcp://host:8786``), or to a new local cluster of
    ``workers`` processes (one thread each). Returns (client, cluster or None)."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def replay_on_dask(config: Config, records: Sequence[RawRecord], out: str | Path, *,
                   labels: pd.DataFrame | None = None, order: Order = "arrival",
                   since_ms: int | None = None, until_ms: int | None = None,
                   attributes: bool = True, partitions: int = DEFAULT_PARTITIONS,
                   scheduler: str | None = None, workers: int = LOCAL_WORKERS
                   ) -> DaskReplayResult:
    """Replay ``records`` into the Parquet dataset ``out`` (a directory of part files),
    one Dask task per bucket. ``out`` must be a path every worker can write (a shared
    file system on a real cluster)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    out_dir = Path(out)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"{out_dir} exists and is not an empty directory: the Dask engine "
                         f"writes a Parquet dataset (a directory of part files) there")
    out_dir.mkdir(parents=True, exist_ok=True)
    buckets = buckets_of(config, records, order, partitions)
    client, cluster = connect(scheduler, workers)
    try:
        shared_labels = client.scatter(labels, broadcast=True) if labels is not None else None
        futures = [client.submit(replay_part, config, bucket, part, str(out_dir.resolve()),
                                 labels=shared_labels, order=order, since_ms=since_ms,
                                 until_ms=until_ms, attributes=attributes, pure=False)
                   for bucket, part in sorted(buckets.items())]
        parts = client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return DaskReplayResult(sorted(parts, key=lambda p: p.bucket))


def check_dask_args(args: argparse.Namespace) -> None:
    """The command line rules of ``--engine dask`` (raises the CLI's UsageError)."""
    from streams.replay.cli import UsageError

    if args.engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    unsupported = [name for name, given in (("--split", args.split),
                                            ("--with-online", args.with_online),
                                            ("--reference", args.reference)) if given]
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
