"""Training sets a data scientist uses directly, on the cards example (not quickstart):
attributes and aware datetimes kept, time bounds on event time, splits without leakage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import FeatureEngine, FeatureSet, compute_features
from streams.cli import main
from streams.config import load_config
from streams.replay import (
    KeyPartitioner,
    parse_split,
    parse_time_ms,
    read_events_file,
    read_labels_file,
    replay,
    split_by_time,
)
from tests.support import REPO

CARDS = REPO / "examples" / "cards.yaml"
CONFIG = load_config(CARDS)
DAY = 86_400_000


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cards")
    for fmt in ("csv", "parquet"):
        subprocess.run([sys.executable, str(REPO / "examples" / "cards_history.py"),
                        "--out", str(out), "--count", "2000", "--format", fmt],
                       check=True, capture_output=True, cwd=REPO, timeout=120)
    return out


@pytest.fixture(scope="module")
def train(history: Path):
    return replay(CONFIG, read_events_file(history / "events.csv", CONFIG),
                  labels=read_labels_file(history / "labels.csv"))


def test_cards_history_replays_with_text_codes_na_values_and_two_rejections(train) -> None:
    assert train.received == 2000
    assert dict(train.rejected) == {"bad_timestamp": 1, "out_of_range": 1}
    assert [e.reason for e in train.examples] == ["bad_timestamp", "out_of_range"]
    assert "has no UTC offset" in train.examples[0].detail
    frame = train.frame
    assert set(frame["group"]) == {"NA", "EMEA", "APAC", "LATAM"}  # region "NA" kept
    assert "NA" in set(frame["country"])  # Namibia kept
    assert "0742" in set(frame["merchant_code"])  # a text code keeps its leading zero
    assert frame["gambling_24h"].sum() > 0 and frame["wires_7d"].sum() > 0


def test_a_training_set_keeps_attributes_and_an_aware_datetime_beside_the_ms(train) -> None:
    frame = train.frame
    attributes = ["merchant_code", "country", "amount", "channel", "card_present"]
    assert list(frame.columns) == [
        "event_id", "entity_id", "ts", "event_time", "group", *attributes,
        *CONFIG.features.names, "label", "label_ts", "label_time"]
    assert str(frame["event_time"].dt.tz) == "UTC"
    assert (frame["event_time"] - pd.Timestamp(0, tz="UTC")
            ).dt.total_seconds().mul(1000).astype("int64").equals(frame["ts"])
    assert frame["label_time"].dt.tz is not None
    assert str(frame["card_present"].dtype) == "boolean"
    assert frame.loc[frame["channel"] == "atm", "card_present"].isna().all()


def test_parquet_and_csv_exports_of_the_same_history_give_the_same_training_set(
    history: Path, train
) -> None:
    other = replay(CONFIG, read_events_file(history / "events.parquet", CONFIG),
                   labels=read_labels_file(history / "labels.csv"))
    pd.testing.assert_frame_equal(train.frame, other.frame)


def test_file_partitions_are_the_kafka_default_partitioners(history: Path) -> None:
    from kafka.partitioner.default import DefaultPartitioner

    from streams.replay import validated_frame

    events = validated_frame(CONFIG, read_events_file(history / "events.csv", CONFIG)).frame
    kafka = DefaultPartitioner()
    parts = list(range(CONFIG.topics.partitions))
    expected = [kafka(e.encode(), parts, parts) for e in events["entity_id"]]
    assert events["_partition"].tolist() == expected
    assert len(set(expected)) == CONFIG.topics.partitions
    assert KeyPartitioner(6)("c001") == kafka(b"c001", parts, parts)


def test_features_equal_the_engine_on_the_event_frame(train, history: Path) -> None:
    """Keeping attributes changes no feature: the same as compute_features on the events."""
    from streams.replay import validated_frame

    events = validated_frame(CONFIG, read_events_file(history / "events.csv", CONFIG)).frame
    features = compute_features(events, CONFIG.features,
                                allowed_lateness_ms=CONFIG.event.allowed_lateness_ms,
                                partition_col="_partition")
    expected = events[["event_id"]].join(features).set_index("event_id")
    got = train.frame.set_index("event_id")[CONFIG.features.names]
    pd.testing.assert_frame_equal(got, expected.loc[got.index], check_dtype=False)


def test_since_until_keep_rows_by_event_time_and_earlier_events_still_feed_features(
    history: Path, train
) -> None:
    since, until = parse_time_ms("2026-01-10T00:00Z"), parse_time_ms("2026-01-20T00:00Z")
    bounded = replay(CONFIG, read_events_file(history / "events.csv", CONFIG),
                     labels=read_labels_file(history / "labels.csv"),
                     since_ms=since, until_ms=until)
    frame = bounded.frame
    assert frame["ts"].between(since, until - 1).all() and len(frame) > 100
    assert bounded.outside > 0
    # The same rows, with the same features, as the whole history cut afterwards.
    whole = train.frame
    expected = whole[whole["ts"].between(since, until - 1)].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, expected)
    assert frame["txns_lifetime"].min() > 1  # earlier events counted


def test_split_by_time_with_a_gap_drops_labels_known_after_the_next_part_starts() -> None:
    t0 = parse_time_ms("2026-01-01T00:00Z")
    days = [0, 5, 9, 10.01, 11, 12, 20]
    label_days = [1, 6, 10.5, 10.02, 12, 13, 21]
    frame = pd.DataFrame({"ts": [t0 + int(d * DAY) for d in days], "label": 1,
                          "label_ts": [t0 + int(d * DAY) for d in label_days]})
    day = {t: d for t, d in zip(frame["ts"], days, strict=True)}
    spec = "train:<2026-01-11T00:00Z,valid:<2026-01-16T00:00Z,test"  # ends at days 10, 15
    parts = split_by_time(frame, parse_split(spec, gap_ms=DAY))
    got = {name: [day[t] for t in part["ts"]] for name, part in parts.parts.items()}
    # day 9's label came at 10.5, before valid starts (day 11, after the gap): kept.
    assert got == {"train": [0, 5, 9], "valid": [11, 12], "test": [20]}
    assert parts.in_gap == 1  # day 10.01 is in [10, 11)
    no_gap = split_by_time(frame, parse_split(spec))
    # Without the gap valid starts at day 10: day 9's label (10.5) would leak; dropped.
    assert no_gap.label_too_late == {"train": 1, "valid": 0}
    assert [day[t] for t in no_gap.parts["train"]["ts"]] == [0, 5]


@pytest.mark.parametrize(
    ("text", "words"),
    [("train,test", "NAME:<TIME"), ("train", "at least two parts"),
     ("a:<2026-01-03T00:00Z,b:<2026-01-02T00:00Z,c", "must increase"),
     ("a:<2026-01-02T00:00Z,a", "repeat"), ("a:<2026-01-02T00:00,b", "no UTC offset"),
     ("a:<2026-01-02T00:00Z,b:<2026-01-03T00:00Z", "the last part takes the rest")],
)
def test_bad_split_specs_say_what_to_write(text: str, words: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_split(text)
    assert words in str(info.value)


def test_a_split_needs_label_times_for_labelled_rows() -> None:
    frame = pd.DataFrame({"ts": [1, 2], "label": [0, 1]})
    with pytest.raises(ValueError, match="label became known"):
        split_by_time(frame, parse_split("a:<2,b"))


def test_cli_split_writes_one_file_per_part_and_the_reference_of_the_first(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sets" / "cards.parquet"
    code = main(["replay", "--config", str(CARDS), "--events", str(history / "events.csv"),
                 "--labels", str(history / "labels.csv"), "--out", str(out), "--no-progress",
                 "--split", "train:<2026-01-15T00:00Z,valid:<2026-01-18T00:00Z,test",
                 "--gap", "2d", "--reference", str(tmp_path / "ref.json")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    parts = {name: pd.read_parquet(tmp_path / "sets" / f"cards.{name}.parquet")
             for name in ("train", "valid", "test")}
    valid_start = parse_time_ms("2026-01-17T00:00Z")
    assert parts["train"]["ts"].max() < parse_time_ms("2026-01-15T00:00Z")
    assert (parts["train"]["label_ts"] < valid_start).all()
    assert parts["valid"]["ts"].min() >= valid_start
    assert parts["test"]["ts"].min() >= parse_time_ms("2026-01-20T00:00Z")
    assert "in a gap between parts" in printed and "train:" in printed
    assert (tmp_path / "ref.json").exists()
    assert np.all([len(p) > 0 for p in parts.values()])


def test_replay_api_returns_the_parts(history: Path) -> None:
    result = replay(CONFIG, read_events_file(history / "events.csv", CONFIG),
                    labels=read_labels_file(history / "labels.csv"),
                    split=parse_split("train:<2026-01-15T00:00Z,test", gap_ms=DAY))
    assert list(result.parts) == ["train", "test"]
    assert sum(len(p) for p in result.parts.values()) < len(result.frame)


def test_an_in_filter_on_merchant_codes_computes_online_and_offline() -> None:
    fs = FeatureSet(features=[{"name": "cash", "agg": "count", "where": {
        "field": "merchant_code", "op": "in", "value": ["6011", "4829"]}}])
    events = pd.DataFrame({"entity_id": ["c", "c"], "ts": [1, 2],
                           "merchant_code": ["6011", "5411"]})
    assert compute_features(events, fs)["cash"].tolist() == [1, 1]
    engine = FeatureEngine(fs, allowed_lateness_ms=0)
    state = engine.new_state()
    assert [engine.apply(state, t, {"merchant_code": m})["cash"]
            for t, m in ((1, "6011"), (2, "5411"))] == [1, 1]
