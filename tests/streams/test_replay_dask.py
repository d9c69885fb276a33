"""``streambed replay --engine dask`` on a real local Dask cluster (2 worker processes):
the dataset it writes equals the local engine's output, row for row and dtype for dtype."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from streams.config import load_config
from streams.replay import RawRecord, read_events_file, read_labels_file, replay
from streams.replay.dask_engine import replay_on_dask, spill_parts
from streams.replay.pipeline import read_spilled
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


def test_arrival_order_with_a_scheduler_address_cuts_by_entity_after_lateness(
        history: Path, tmp_path: Path, scheduler: str) -> None:
    config = load_config(QUICKSTART)
    records = read_events_file(history / "events.jsonl", config)
    labels = read_labels_file(history / "labels.jsonl")
    local = replay(config, records, labels=labels, order="arrival", since_ms=None)
    assert local.rejected["late"] > 0  # the watermark is per Kafka partition: tested here
    out = tmp_path / "arrival.parquet"
    result = replay_on_dask(config, records, out, labels=labels, order="arrival",
                            scheduler=scheduler, partitions=4)
    assert sorted(p.bucket for p in result.parts) == [0, 1, 2, 3]  # 4 tasks on 2 workers
    assert not list(out.glob("_spill-*"))  # the driver's spill is gone
    assert result.rejected == local.rejected and result.received == local.received
    expected = local.frame.sort_values(KEY, kind="stable").reset_index(drop=True)
    local_file = tmp_path / "local.parquet"
    expected.to_parquet(local_file, index=False)
    pd.testing.assert_frame_equal(sorted_frame(out), sorted_frame(local_file),
                                  check_exact=True)


def test_the_driver_spills_parts_by_entity_in_arrival_order(history: Path,
                                                            tmp_path: Path) -> None:
    config = load_config(QUICKSTART)
    records = read_events_file(history / "events.jsonl", config)
    for order in ("arrival", "event-time"):
        acceptance, spill = spill_parts(config, records, order, 6, tmp_path)
        try:
            parts = {b: read_spilled(spill.paths[b], config) for b in range(6)}
        finally:
            spill.close()
        entities = [set(events["entity_id"]) for events in parts.values()]
        assert sum(map(len, entities)) == len(set().union(*entities))  # no entity split
        assert all(events["_seq"].is_monotonic_increasing  # arrival order kept
                   for events in parts.values())
        accepted = acceptance.tally.received - sum(acceptance.tally.rejected.values())
        assert sum(map(len, parts.values())) == accepted
        assert (acceptance.tally.rejected["late"] > 0) == (order == "arrival")
    assert not list(tmp_path.iterdir())  # closed: the spill is gone
    lines = (history / "events.jsonl").read_bytes().splitlines()
    valid = sorted([line for line in lines if b'"entity_id"' in line][:3],
                   key=lambda line: json.loads(line)["ts"])  # none late
    kafka = [RawRecord(line, p, i, 0) for i, (line, p) in enumerate(zip(valid, (2, 0, 2),
                                                                         strict=False))]
    acceptance, spill = spill_parts(config, kafka, "arrival", 4, tmp_path)
    try:
        got = pd.concat([read_spilled(spill.paths[b], config) for b in range(4)
                         if spill.counts[b]])
    finally:
        spill.close()
    assert acceptance.tally.rejected == {}
    # a record read from Kafka keeps its partition, whatever its entity key
    assert dict(zip(got["_seq"], got["_partition"], strict=True)) == {0: 2, 1: 0, 2: 2}


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


@pytest.mark.kafka
def test_arrival_replay_from_kafka_gives_one_task_per_partition_and_the_local_rows(
        kafka_bootstrap: str, topic_config: Path, tmp_path: Path, scheduler: str) -> None:
    from streams.devtools.simulate import SimulationOptions, Simulator
    from streams.topics import ensure_topics
    from tests.support import produce_to

    config = load_config(topic_config)
    ensure_topics(config)
    sim = Simulator(config, SimulationOptions(count=1200, seed=3, malformed_ratio=0.02,
                                              disorder_ms=7_200_000))
    events = [(config.topics.events, r.key, r.value) for r in sim.records()
              if r.kind == "event"]
    produce_to(kafka_bootstrap, events)
    common = ["replay", "--config", str(topic_config), "--from-kafka", "--order", "arrival",
              "--no-progress"]
    local = cli(*common, "--out", str(tmp_path / "local.parquet"))
    assert local.returncode == 0, local.stderr
    dask = cli(*common, "--engine", "dask", "--out", str(tmp_path / "dask.parquet"))
    assert dask.returncode == 0, dask.stderr
    assert f"{config.topics.partitions} Dask tasks" in dask.stdout
    assert local.stdout.split(" rejected")[0] in dask.stdout
    assert "late=" in local.stdout and "malformed_json=" in local.stdout
    expected, got = sorted_frame(tmp_path / "local.parquet"), sorted_frame(
        tmp_path / "dask.parquet")
    assert got.dtypes.to_dict() == expected.dtypes.to_dict()
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # each task read its own Kafka partition: the driver read no event
    from streams.replay import read_events_topic

    result = replay_on_dask(config, read_events_topic(config), tmp_path / "api.parquet",
                            order="arrival", scheduler=scheduler)
    assert [p.bucket for p in result.parts] == list(range(config.topics.partitions))
    assert all(p.received > 0 for p in result.parts)
    assert result.received == len(events) and result.rows == len(expected)


def test_a_hot_entity_in_a_task_is_replayed_in_chunks_and_equals_the_local_engine(
        tmp_path: Path, scheduler: str) -> None:
    config = load_config(QUICKSTART)
    t0 = 1_767_225_600_000
    records = []
    for i in range(1200):  # entity u0 holds 3 events in 4; ts out of order by up to 3 min
        event = {"event_id": f"e{i}", "entity_id": "u0" if i % 4 else f"u{1 + i % 9}",
                 "ts": t0 + i * 60_000 - (i * 7919 % 180_000), "amount": float(i % 17),
                 "income": 1000.0, "credit_score": 700, "channel": ["web", "branch"][i % 2],
                 "group": "A"}
        records.append(RawRecord(json.dumps(event).encode(), None, i, None, line=i + 1))
    for order in ("event-time", "arrival"):
        out = tmp_path / f"{order}.parquet"
        result = replay_on_dask(config, records, out, order=order, scheduler=scheduler,
                                partitions=4, bucket_events=200)
        assert result.hot_entities == 1  # u0's 900 events: in chunks, in its task
        assert 800 < sum(p.hot_events for p in result.parts) <= 900
        local = replay(config, records, order=order).frame
        local_file = tmp_path / f"local-{order}.parquet"
        local.to_parquet(local_file, index=False)
        got, expected = sorted_frame(out), sorted_frame(local_file)
        assert got.dtypes.to_dict() == expected.dtypes.to_dict()
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
