"""Replay from the real broker: a file replays exactly like the topic it would be produced
to, --since/--until bound event time (not broker time), and --with-online adds what each
event got online from the scored topic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from streams.cli import main
from streams.config import Config, load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.replay import (
    labels_from_records,
    parse_time_ms,
    read_events_file,
    read_events_topic,
    read_topic,
    replay,
)
from streams.topics import ensure_topics
from tests.support import produce_to

pytestmark = pytest.mark.kafka

SINCE, UNTIL = "2026-01-01T03:00Z", "2026-01-01T06:00Z"


@pytest.fixture
def stream(topic_config: Path, kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple]:
    """A simulated stream with late events, produced keyed by entity in file order, and the
    same events written to a JSONL file."""
    config = load_config(topic_config)
    ensure_topics(config)
    opts = SimulationOptions(count=800, seed=5, entities=30, disorder_ms=400_000,
                             mean_gap_ms=30_000, label_ratio=0.5, malformed_ratio=0.03)
    records = list(Simulator(config, opts).records())
    topics = {"event": config.topics.events, "label": config.topics.labels}
    produce_to(kafka_bootstrap, [(topics[r.kind], r.key, r.value) for r in records])
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(r.value for r in records if r.kind == "event"))
    yield config, topic_config, path, records


def test_a_file_replays_exactly_like_the_topic_it_was_produced_to(stream) -> None:
    config, _, path, _ = stream
    from_file = replay(config, read_events_file(path, config))
    from_topic = replay(config, read_events_topic(config))
    assert from_topic.rejected["late"] > 0, "the stream has late events to agree on"
    assert from_file.rejected == from_topic.rejected
    a = from_file.frame.sort_values("event_id").reset_index(drop=True)
    b = from_topic.frame.sort_values("event_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_since_until_bound_event_time_and_match_the_file(stream) -> None:
    config, _, path, _ = stream
    since, until = parse_time_ms(SINCE), parse_time_ms(UNTIL)
    # Broker timestamps are today; event times are in January: a broker-time bound would
    # keep everything or nothing.
    records = read_events_topic(config, since_ms=since, until_ms=until)
    topic = replay(config, records, since_ms=since, until_ms=until)
    file = replay(config, read_events_file(path, config), since_ms=since, until_ms=until)
    assert topic.frame["ts"].between(since, until - 1).all() and len(topic.frame) > 50
    pd.testing.assert_frame_equal(topic.frame.sort_values("event_id").reset_index(drop=True),
                                  file.frame.sort_values("event_id").reset_index(drop=True))
    # Each partition stopped once its watermark passed until + lateness: the rest unread.
    assert len(records) < 800


def scored_records(config: Config, records: list) -> list[tuple[str, str, str, bytes]]:
    events = [json.loads(r.value) for r in records if r.kind == "event" and r.valid]
    out = []
    for i, ev in enumerate(events[::2]):
        rec = {"event_id": ev["event_id"], "entity_id": ev["entity_id"], "ts": ev["ts"],
               "score": round(i / len(events), 4), "decision": i % 2,
               "model_version": f"v{i // 100}"}
        out.append((config.topics.scored, ev["entity_id"], json.dumps(rec).encode()))
    first = json.loads(out[0][2])
    # A redelivered record of the first event (a later version): the first one wins.
    out.append((config.topics.scored, first["entity_id"],
                json.dumps({**first, "model_version": "v9"}).encode()))
    out.append((config.topics.scored, "x", b"not json"))
    return out


def test_with_online_adds_score_decision_and_version_from_the_scored_topic(
    stream, kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, config_path, _, records = stream
    scored = scored_records(config, records)
    produce_to(kafka_bootstrap, scored)
    out = tmp_path / "train.parquet"
    code = main(["replay", "--config", str(config_path), "--from-kafka", "--labels", "kafka",
                 "--with-online", "--order", "arrival", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "1 scored record(s) could not be read" in printed.err
    frame = pd.read_parquet(out)
    online = {json.loads(v)["event_id"]: json.loads(v) for _, _, v in scored[:-2]}
    labels = labels_from_records(read_topic(config, config.topics.labels))
    assert set(frame["event_id"]) <= set(labels["event_id"])
    assert list(frame.columns[-3:]) == ["online_score", "online_decision",
                                        "online_model_version"]
    for row in frame.to_dict(orient="records"):
        want = online.get(row["event_id"])
        if want is None:
            assert pd.isna(row["online_score"]) and pd.isna(row["online_model_version"])
        else:
            assert row["online_score"] == want["score"]
            assert row["online_decision"] == want["decision"]
            assert row["online_model_version"] == want["model_version"]  # not "v9"
    assert frame["online_score"].notna().sum() > 0
    assert "rows have a scored record" in printed.out


def test_cli_since_until_are_event_time_not_broker_time(
    stream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config_path, _, _ = stream
    out = tmp_path / "window.csv"
    code = main(["replay", "--config", str(config_path), "--from-kafka", "--since", SINCE,
                 "--until", UNTIL, "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    frame = pd.read_csv(out)
    assert len(frame) > 50
    assert frame["ts"].between(parse_time_ms(SINCE), parse_time_ms(UNTIL) - 1).all()
    assert "outside --since/--until (history only)=" in printed.out


def test_a_large_labels_topic_is_spilled_by_event_id_and_joins_as_in_memory(
        stream, tmp_path: Path) -> None:
    from streams.replay.cli import kafka_labels
    from streams.replay.labels import SpilledLabels
    from streams.replay.to_files import replay_to_files

    config, _, path, _ = stream
    in_memory = labels_from_records(read_topic(config, config.topics.labels))
    assert len(in_memory) > 100
    spilled = kafka_labels(config, None, 500_000)  # a budget this small: on disk
    assert isinstance(spilled, SpilledLabels) and spilled.parts > 1
    try:
        assert spilled.rows == len(in_memory)
        out = tmp_path / "train.parquet"
        replay_to_files(config, read_events_file(path, config), {None: out},
                        labels=spilled, order="event-time")
    finally:
        spilled.close()
    expected = replay(config, read_events_file(path, config), labels=in_memory,
                      order="event-time").frame
    got = pd.read_parquet(out).set_index("event_id").loc[expected["event_id"]].reset_index()
    assert len(expected) > 100
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=True)


def test_a_large_scored_topic_is_spilled_by_event_id_and_adds_the_same_online_columns(
        stream, kafka_bootstrap: str, tmp_path: Path) -> None:
    from streams.replay import online_from_records
    from streams.replay.cli import kafka_online
    from streams.replay.labels import SpilledLabels
    from streams.replay.to_files import replay_to_files

    config, _, path, records = stream
    produce_to(kafka_bootstrap, scored_records(config, records))
    in_memory, unreadable = online_from_records(read_topic(config, config.topics.scored))
    spilled, spilled_unreadable = kafka_online(config, None, 500_000)  # small budget: disk
    assert isinstance(spilled, SpilledLabels) and spilled.parts > 1
    assert spilled_unreadable == unreadable == 1
    outputs = {}
    try:
        for name, online in (("memory", in_memory), ("disk", spilled)):
            outputs[name] = tmp_path / f"{name}.parquet"
            result = replay_to_files(config, read_events_file(path, config),
                                     {None: outputs[name]}, online=online,
                                     order="event-time")
            assert result.online_scored > 100
    finally:
        spilled.close()
    expected, got = (pd.read_parquet(outputs[n]).sort_values("event_id").reset_index(
        drop=True) for n in ("memory", "disk"))
    assert "v9" not in set(got["online_model_version"].dropna())  # the first one won
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
