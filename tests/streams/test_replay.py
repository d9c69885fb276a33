"""Replay from files: same validation as the worker, point-in-time rows, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from features import FeatureEngine
from monitors import Metrics, Monitoring
from monitors.config import ReferenceConfig
from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.replay import (
    read_events_file,
    read_labels_file,
    replay,
    select_features,
)
from streams.validation import EventValidator, ValidEvent
from tests.support import REPO

QUICKSTART = REPO / "examples" / "quickstart.yaml"
CONFIG = load_config(QUICKSTART)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("history")
    subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--config", str(QUICKSTART),
         "--count", "1500", "--seed", "3", "--malformed-ratio", "0.05",
         "--disorder-seconds", "120", "--label-ratio", "0.7", "--out", str(out)],
        check=True, capture_output=True, cwd=REPO, timeout=120,
    )
    return out


def test_replay_equals_the_online_engine_in_arrival_order(history: Path) -> None:
    records = read_events_file(history / "events.jsonl", CONFIG)
    result = replay(CONFIG, records)
    validator, engine = EventValidator(CONFIG.event), FeatureEngine(
        CONFIG.features, CONFIG.event.allowed_lateness_ms)
    states: dict[str, object] = {}
    expected = []
    for rec in records:
        ev = validator.validate(rec.value, time.time_ns() // 1_000_000)
        if isinstance(ev, ValidEvent):
            state = states.setdefault(ev.entity_id, engine.new_state())
            expected.append(engine.apply(state, ev.ts_ms, ev.attrs))
    assert len(result.frame) == len(expected)
    assert result.accepted + sum(result.rejected.values()) == result.received == 1500
    for row, want in zip(result.frame.to_dict(orient="records"), expected, strict=True):
        for name, value in want.items():
            got = row[name]
            if value is None:
                assert pd.isna(got), (row["event_id"], name)
            else:
                assert got == pytest.approx(value, rel=1e-9), (row["event_id"], name)


def test_training_set_has_one_row_per_labelled_event_and_labels_never_move_features(
    history: Path,
) -> None:
    records = read_events_file(history / "events.jsonl", CONFIG)
    labels = read_labels_file(history / "labels.jsonl")
    everything = replay(CONFIG, records).frame.set_index("event_id")
    train = replay(CONFIG, records, labels=labels).frame
    assert len(train) == labels["event_id"].nunique()
    assert set(train["label"].unique()) <= {0, 1}
    features = CONFIG.features.names
    pd.testing.assert_frame_equal(
        train.set_index("event_id")[features], everything.loc[train["event_id"], features],
        check_names=False)


def test_event_time_order_differs_only_where_arrival_was_out_of_order(history: Path) -> None:
    records = read_events_file(history / "events.jsonl", CONFIG)
    arrival = replay(CONFIG, records).frame.set_index("event_id")
    ideal = replay(CONFIG, records, order="event-time").frame.set_index("event_id")
    assert set(arrival.index) <= set(ideal.index)
    differs = (arrival["apps_lifetime"] != ideal.loc[arrival.index, "apps_lifetime"]).sum()
    assert 0 < differs < len(arrival) / 2


def test_csv_and_parquet_sources_give_the_same_frame(history: Path, tmp_path: Path) -> None:
    rows = []
    for line in (history / "events.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    good = pd.DataFrame([r for r in rows if isinstance(r, dict) and "entity_id" in r
                         and isinstance(r.get("ts"), int) and "unexpected_field" not in r])
    good = good[good["ts"] < 4_000_000_000_000]
    good.to_csv(tmp_path / "e.csv", index=False)
    good.to_parquet(tmp_path / "e.parquet")
    a = replay(CONFIG, read_events_file(tmp_path / "e.csv", CONFIG)).frame
    b = replay(CONFIG, read_events_file(tmp_path / "e.parquet", CONFIG)).frame
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert len(a) > 1000


def test_missing_columns_and_unknown_features_are_named(tmp_path: Path) -> None:
    pd.DataFrame({"event_id": ["e1"], "ts": [1]}).to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(ValueError, match=r"no column\(s\) \['entity_id', 'amount'"):
        read_events_file(tmp_path / "e.csv", CONFIG)
    with pytest.raises(ValueError, match="unknown feature"):
        select_features(CONFIG, ["apps_1h", "nope"])
    (tmp_path / "l.csv").write_text("event_id,outcome\ne1,1\n")
    with pytest.raises(ValueError, match="no column 'label'"):
        read_labels_file(tmp_path / "l.csv")


def test_unparsable_timestamps_are_counted_not_crashing(tmp_path: Path) -> None:
    rows = [{"event_id": "e1", "entity_id": "u", "ts": "soon", "amount": 1.0, "income": 1.0,
             "credit_score": 500, "channel": "web"}]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    result = replay(CONFIG, read_events_file(tmp_path / "e.jsonl", CONFIG))
    assert result.rejected == {"wrong_type": 1} and len(result.frame) == 0


def test_cli_writes_parquet_and_reports_counts(history: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--config", str(QUICKSTART),
         "--events", str(history / "events.jsonl"), "--labels", str(history / "labels.jsonl"),
         "--out", str(out), "--reference", str(tmp_path / "ref.json"), "--no-progress"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "received=1500" in proc.stdout
    frame = pd.read_parquet(out)
    labels = read_labels_file(history / "labels.jsonl")
    assert len(frame) == labels["event_id"].nunique()
    assert list(frame.columns[:5]) == ["event_id", "entity_id", "ts", "event_time", "group"]
    assert list(frame.columns[-3:]) == ["label", "label_ts", "label_time"]
    monitors = CONFIG.monitors.model_copy(update={"drift": CONFIG.monitors.drift.model_copy(
        update={"reference": ReferenceConfig(source="file", path=tmp_path / "ref.json")})})
    monitoring = Monitoring(monitors, CONFIG.features.names, Metrics(CollectorRegistry()))
    monitoring.refresh(1.0)
    drift = monitoring.snapshot()["feature_drift"]["amount_last"]
    assert drift["reference_source"] == "file" and drift["reference_events"] == len(frame)


def test_simulated_history_matches_the_simulator(history: Path) -> None:
    sim = list(Simulator(CONFIG, SimulationOptions(count=1500, seed=3, malformed_ratio=0.05,
                                                   disorder_ms=120_000, label_ratio=0.7))
               .records())
    events = read_events_file(history / "events.jsonl", CONFIG)
    assert sum(r.kind == "event" for r in sim) == len(events)
