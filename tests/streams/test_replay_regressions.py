"""Regressions of ``streambed replay`` on files, each through the command line a data
scientist types: text read as written, columns typed by the config, a file's arrival
order partitioned like the topic, failures that say why, usage errors before any work."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kafka.partitioner.default import murmur2

from streams.cli import main

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000

CARDS_LIKE = {
    "name": "regress",
    "event": {
        "group_field": "region",
        "allowed_lateness": "5m",
        "attributes": {
            "merchant_code": {"type": "str", "required": True},
            "country": {"type": "str"},
            "amount": {"type": "float", "required": True},
        },
    },
    "features": [
        {"name": "n_lifetime", "agg": "count"},
        {"name": "amount_sum_1d", "agg": "sum", "field": "amount",
         "window": {"kind": "sliding", "size": "1d"}},
        {"name": "groceries", "agg": "count",
         "where": {"field": "merchant_code", "op": "eq", "value": "5411"}},
    ],
    "topics": {"partitions": 4},
}


def config_file(tmp_path: Path, raw: dict | None = None) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw or CARDS_LIKE))
    return path


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_replay(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """``streambed replay ARGS --no-progress`` in this process: its exit status and output."""
    def run(*args: str | Path) -> Run:
        capsys.readouterr()
        try:
            code = main(["replay", *map(str, args), "--no-progress"])
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Run(code, out.out, out.err)

    return run


def event(i: int, entity: str, ts: int, **attrs: object) -> dict:
    return {"event_id": f"e{i}", "entity_id": entity, "ts": ts, "region": "EMEA",
            "merchant_code": "5999", "amount": 10.0, **attrs}


def partition_of(key: str, partitions: int = 4) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def test_csv_text_na_is_north_america_and_namibia_not_null(
    run_replay: Callable[..., Run], tmp_path: Path
) -> None:
    csv = tmp_path / "events.csv"
    csv.write_text("event_id,entity_id,ts,region,merchant_code,country,amount\n"
                   f"e1,c1,{T0},NA,grocery,NA,12.5\n"
                   f"e2,c1,{T0 + 1000},EMEA,grocery,,3.0\n")
    out = tmp_path / "out.csv"
    proc = run_replay("--config", config_file(tmp_path), "--events", csv, "--out", out)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert frame["group"].tolist() == ["NA", "EMEA"]
    assert frame["country"].tolist() == ["NA", ""]  # only the empty cell is null


def test_numeric_looking_text_attribute_in_csv_is_text(
    run_replay: Callable[..., Run], tmp_path: Path
) -> None:
    csv = tmp_path / "events.csv"
    csv.write_text("event_id,entity_id,ts,region,merchant_code,amount\n"
                   f"e1,c1,{T0},EMEA,5411,12.5\n"
                   f"e2,c1,{T0 + 1000},EMEA,0742,3\n")
    out = tmp_path / "out.parquet"
    proc = run_replay("--config", config_file(tmp_path), "--events", csv, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "accepted=2" in proc.stdout
    frame = pd.read_parquet(out)
    assert frame["merchant_code"].tolist() == ["5411", "0742"]  # the leading zero kept
    assert frame["groceries"].tolist() == [1, 1]
    assert frame["amount"].tolist() == [12.5, 3.0]


def test_parquet_number_column_for_a_text_attribute_is_read_as_its_text(
    run_replay: Callable[..., Run], tmp_path: Path,
) -> None:
    pq = tmp_path / "events.parquet"
    pd.DataFrame({"event_id": ["e1", "e2"], "entity_id": ["c1", "c1"],
                  "ts": [T0, T0 + 1000], "region": ["NA", "NA"],
                  "merchant_code": [5411, 5812], "amount": [1.0, 2.0]}).to_parquet(pq)
    out = tmp_path / "out.csv"
    proc = run_replay("--config", config_file(tmp_path), "--events", pq, "--out", out)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert frame["merchant_code"].tolist() == ["5411", "5812"]
    assert frame["groceries"].tolist() == ["1", "1"]


def two_entities_in_different_partitions() -> tuple[str, str]:
    keys = [f"c{i}" for i in range(50)]
    first = keys[0]
    second = next(k for k in keys if partition_of(k) != partition_of(first))
    return first, second


def test_a_file_sorted_by_entity_keeps_what_a_worker_on_the_topic_would_accept(
    run_replay: Callable[..., Run], tmp_path: Path,
) -> None:
    a, b = two_entities_in_different_partitions()
    rows = [event(i, a, T0 + i * HOUR) for i in range(10)]
    rows += [event(10 + i, b, T0 + i * HOUR) for i in range(10)]  # 9 hours "back"
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out.parquet"
    proc = run_replay("--config", config_file(tmp_path), "--events", path, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "rejected: none" in proc.stdout, proc.stdout
    frame = pd.read_parquet(out)
    assert len(frame) == 20
    assert frame.groupby("entity_id")["n_lifetime"].max().tolist() == [10, 10]


def test_a_partition_column_is_the_arrival_partition(
    run_replay: Callable[..., Run], tmp_path: Path
) -> None:
    a, b = two_entities_in_different_partitions()
    rows = [event(i, a, T0 + i * HOUR) for i in range(10)]
    rows += [event(10 + i, b, T0 + i * HOUR) for i in range(10)]
    frame = pd.DataFrame(rows).assign(partition=0)  # both arrived on partition 0
    frame.to_csv(tmp_path / "events.csv", index=False)
    proc = run_replay("--config", config_file(tmp_path), "--events",
                      tmp_path / "events.csv", "--out", tmp_path / "out.csv")
    assert proc.returncode == 0, proc.stderr
    # b's events at 0h..4h are more than 5 minutes behind a's watermark (9h) on partition 0.
    assert "late=9" in proc.stdout, proc.stdout
    assert "behind the watermark of partition 0" in proc.stdout


@pytest.mark.parametrize(
    ("ts", "hint"),
    [(T0 // 1000, "looks like seconds, time_format is epoch_ms"),
     ("2026-01-01T00:00:00", "looks like ISO-8601, time_format is epoch_ms")],
)
def test_a_replay_that_accepts_nothing_fails_and_shows_why(
    run_replay: Callable[..., Run], tmp_path: Path, ts: object, hint: str
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(event(i, "c1", 0) | {"ts": ts}) for i in range(3)))
    out = tmp_path / "out.parquet"
    proc = run_replay("--config", config_file(tmp_path), "--events", path, "--out", out)
    assert proc.returncode == 1
    assert "nothing was accepted" in proc.stderr
    assert hint in proc.stderr, proc.stderr
    assert "at line 1" in proc.stderr
    assert not out.exists()


def test_rejections_are_shown_with_examples_even_when_the_replay_succeeds(
    run_replay: Callable[..., Run], tmp_path: Path,
) -> None:
    rows = [json.dumps(event(1, "c1", T0)), json.dumps(event(2, "c1", T0 // 1000)), "{oops"]
    (tmp_path / "e.jsonl").write_text("\n".join(rows))
    proc = run_replay("--config", config_file(tmp_path), "--events", tmp_path / "e.jsonl",
                      "--out", tmp_path / "o.csv")
    assert proc.returncode == 0, proc.stderr
    assert "e.g. bad_timestamp at line 2: ts: 1767225600 is before min_time_ms " \
           "(looks like seconds, time_format is epoch_ms)" in proc.stdout
    assert "e.g. malformed_json at line 3" in proc.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--out", "{tmp}/x.xlsx"], "--out: unknown output type '.xlsx'"),
        (["--out", "{tmp}/x.csv", "--since", "2026-01-01T00:00"], "has no UTC offset"),
        (["--out", "{tmp}/x.csv", "--until", "1767225600"], "looks like epoch seconds"),
        (["--out", "{tmp}/x.csv", "--split", "train<2026-01-02T00:00Z,test"], "--split"),
        (["--out", "{tmp}/x.csv", "--split", "train:<2026-01-02T00:00Z,test", "--gap", "soon"],
         "--gap: not a duration"),
        (["--out", "{tmp}/x.csv", "--gap", "1d"], "--gap needs --split"),
        (["--out", "{tmp}/x.csv", "--with-online"], "--with-online need(s) --from-kafka"),
        (["--out", "{tmp}/x.csv", "--features", "n_lifetime,nope"], "unknown feature(s) ['nope']"),
        (["--out", "{tmp}/x.csv", "--reference", "ref.parquet"], "a drift reference is a .json"),
        (["--out", "{tmp}/x.csv", "--labels", "{tmp}/no.csv"],
         "--labels {tmp}/no.csv: no such file"),
        (["--out", "{tmp}/x.csv", "--order", "random"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2_before_any_work(
    run_replay: Callable[..., Run], tmp_path: Path, args: list[str], words: str
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(event(1, "c1", T0)))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = run_replay("--config", config_file(tmp_path), "--events", events, *args)
    assert proc.returncode == 2, proc.stderr
    assert words.replace("{tmp}", str(tmp_path)) in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == "" and not list(tmp_path.glob("x*"))


def test_reading_a_parquet_history_holds_one_row_group_not_all_read_so_far(
        tmp_path: Path) -> None:
    """Arrow's pre-buffer cache kept every row group read until the reader closed: the
    first pass of a 10M-event history grew by 300 MiB (issue 17)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from streams.config import EventSchema
    from streams.replay.batches import EventFile

    path = tmp_path / "events.parquet"
    rng = np.random.default_rng(3)
    rows = 100_000  # 2.4 MB of incompressible numbers per row group
    names = ("event_id", "entity_id", "ts")
    with pq.ParquetWriter(path, pa.schema([(name, pa.float64()) for name in names])) as writer:
        for _ in range(20):
            writer.write_table(pa.table({name: rng.random(rows) for name in names}))
    history = EventFile(path, EventSchema(), batch_rows=50_000)
    before = pa.total_allocated_bytes()
    held = [pa.total_allocated_bytes() - before for _ in history.batches()]
    assert len(held) == 40
    # a row group or two in hand (about 10 MB), not the file read so far (48 MB)
    assert max(held) < path.stat().st_size / 3


def test_consumed_messages_become_one_batch_per_partition_in_offset_order() -> None:
    from confluent_kafka import KafkaError, KafkaException, Message

    from streams.replay.topic import OFFSET_BITS, _by_partition

    msgs = [Message(topic="t", partition=p, offset=o, value=v, timestamp=(1, 1000 + o))
            for p, o, v in [(2, 7, b'{"a":1}'), (0, 3, None), (2, 8, b"x"), (0, 4, b"y")]]
    got = {p: batch for p, batch in _by_partition(msgs)}
    assert sorted(got) == [0, 2]
    assert got[0].position.tolist() == [3, 4] and got[2].position.tolist() == [7, 8]
    assert got[0].values.to_pylist() == [b"", b"y"]  # a tombstone reads as empty
    assert got[2].values.to_pylist() == [b'{"a":1}', b"x"]
    assert got[2].timestamp_ms.tolist() == [1007, 1008]
    assert got[2].seq.tolist() == [(2 << OFFSET_BITS) + 7, (2 << OFFSET_BITS) + 8]
    broken = [*msgs, Message(topic="t", partition=1, offset=0,
                             error=KafkaError(KafkaError._MSG_TIMED_OUT))]
    with pytest.raises(KafkaException):
        list(_by_partition(broken))
