"""``streambed replay --engine dask`` on a real local Dask cluster (2 worker processes):
the dataset it writes equals the local engine's output, row for row and dtype for dtype."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from streams.config import load_config
from streams.replay import RawRecord, read_events_file, read_labels_file, replay
from streams.replay.dask_engine import buckets_of, entity_bucket, replay_on_dask
from tests.support import REPO

QUICKSTART = REPO / "examples" / "quickstart.yaml"
KEY = ["entity_id", "ts", "event_id"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Events out of time order (disorder up to 2 h, so some are late), malformed ones."""
    out = tmp_path_factory.mktemp("history")
    done = cli("simulate", "--config", str(QUICKSTART), "--count", "3000", "--entities",
               "300", "--out", str(out), "--malformed-ratio", "0.02", "--disorder-seconds",
               "7200")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A real scheduler with two worker processes, reached by its address."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    yield cluster.scheduler_address
    cluster.close()


def sorted_frame(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values(KEY, kind="stable").reset_index(drop=True)


def test_event_time_dataset_equals_the_local_engine(history: Path, tmp_path: Path) -> None:
    common = ["replay", "--config", str(QUICKSTART), "--events",
              str(history / "events.jsonl"), "--labels", str(history / "labels.jsonl"),
              "--order", "event-time", "--no-progress"]
    local = cli(*common, "--out", str(tmp_path / "local.parquet"))
    assert local.returncode == 0, local.stderr
    dask = cli(*common, "--engine", "dask", "--partitions", "6", "--out",
               str(tmp_path / "dask.parquet"))
    assert dask.returncode == 0, dask.stderr
    assert "6 Dask tasks" in dask.stdout
    parts = sorted((tmp_path / "dask.parquet").glob("part-*.parquet"))
    assert len(parts) == 6
    # every entity in exactly one part
    entities = [set(pd.read_parquet(p, columns=["entity_id"])["entity_id"]) for p in parts]
    assert sum(len(e) for e in entities) == len(set().union(*entities))
    # the same counts on both engines' summary lines
    assert local.stdout.split(" rejected")[0] in dask.stdout
    expected, got = sorted_frame(tmp_path / "local.parquet"), sorted_frame(
        tmp_path / "dask.parquet")
    assert len(expected) > 2000 and "label" in expected.columns
    assert list(got.columns) == list(expected.columns)
    assert got.dtypes.to_dict() == expected.dtypes.to_dict()
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_arrival_order_with_a_scheduler_address_maps_kafka_partitions_to_tasks(
        history: Path, tmp_path: Path, scheduler: str) -> None:
    config = load_config(QUICKSTART)
    records = read_events_file(history / "events.jsonl", config)
    labels = read_labels_file(history / "labels.jsonl")
    local = replay(config, records, labels=labels, order="arrival", since_ms=None)
    assert local.rejected["late"] > 0  # the watermark is per Kafka partition: tested here
    out = tmp_path / "arrival.parquet"
    result = replay_on_dask(config, records, out, labels=labels, order="arrival",
                            scheduler=scheduler)
    assert sorted(p.bucket for p in result.parts) == list(range(config.topics.partitions))
    assert result.rejected == local.rejected and result.received == local.received
    expected = local.frame.sort_values(KEY, kind="stable").reset_index(drop=True)
    local_file = tmp_path / "local.parquet"
    expected.to_parquet(local_file, index=False)
    pd.testing.assert_frame_equal(sorted_frame(out), sorted_frame(local_file),
                                  check_exact=True)


def test_records_go_to_their_kafka_partition_or_their_entity_bucket() -> None:
    config = load_config(QUICKSTART)
    kafka = [RawRecord(b'{"entity_id": "u1"}', p, o, 0) for p, o in ((2, 0), (0, 1), (2, 1))]
    assert {b: [r.offset for r in rs] for b, rs in
            buckets_of(config, kafka, "arrival", 8).items()} == {2: [0, 1], 0: [1]}
    rows = [RawRecord(v, None, i, None) for i, v in enumerate(
        [b'{"entity_id": "u1"}', b'{"entity_id": 7}', b"not json", b'{"entity_id": "u1"}'])]
    buckets = buckets_of(config, rows, "event-time", 4)
    assert [r.offset for r in buckets[entity_bucket("u1", 4)] if b"u1" in r.value] == [0, 3]
    assert 1 in [r.offset for r in buckets[entity_bucket("7", 4)]]
    assert 2 in [r.offset for r in buckets[0]]


def test_dask_engine_usage_errors_are_one_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "e1"}\n')
    base = ["replay", "--config", str(QUICKSTART), "--events", str(events)]
    for extra, words in (
            (["--scheduler", "tcp://127.0.0.1:1", "--out", "x.parquet"], "needs --engine"),
            (["--engine", "dask", "--out", "x.csv"], "Parquet dataset"),
            (["--engine", "dask", "--out", "x.parquet", "--partitions", "2"], "at least 4"),
            (["--engine", "dask", "--out", "x.parquet", "--split", "a:<1,b"], "--split")):
        done = cli(*base, *extra)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
