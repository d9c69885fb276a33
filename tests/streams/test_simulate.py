"""The simulator: deterministic per seed, labels after their events, injections where asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.validation import EventValidator, Rejection, ValidEvent
from tests.support import REPO

CONFIG = load_config(REPO / "examples" / "quickstart.yaml")


def _records(**opts: object) -> list:
    return list(Simulator(CONFIG, SimulationOptions(**opts)).records())


def test_same_seed_same_stream_and_another_seed_another() -> None:
    assert _records(count=200, seed=3) == _records(count=200, seed=3)
    assert _records(count=200, seed=3) != _records(count=200, seed=4)


def test_every_label_comes_after_its_event_and_names_it() -> None:
    seen: set[str] = set()
    for rec in _records(count=300, seed=1, label_ratio=0.8):
        body = json.loads(rec.value)
        if rec.kind == "event":
            seen.add(body["event_id"])
        else:
            assert body["event_id"] in seen and body["label"] in (0, 1)


def test_valid_records_validate_and_malformed_ones_are_rejected() -> None:
    validator = EventValidator(CONFIG.event)
    records = [r for r in _records(count=600, seed=2, malformed_ratio=0.2) if r.kind == "event"]
    outcomes = [validator.validate(r.value, r.ts_ms) for r in records]
    assert all(isinstance(o, ValidEvent) for r, o in zip(records, outcomes, strict=True)
               if r.valid)
    rejected = [o for r, o in zip(records, outcomes, strict=True) if not r.valid]
    assert rejected and all(isinstance(o, Rejection) for o in rejected)
    assert len({o.reason for o in rejected}) >= 5


def _mean_amount(records: list, group: str | None = None) -> float:
    bodies = [json.loads(r.value) for r in records if r.kind == "event"]
    amounts = [b["amount"] for b in bodies if group is None or b["group"] == group]
    return sum(amounts) / len(amounts)


def test_drift_and_disparity_shift_the_second_half() -> None:
    recs = _records(count=2000, seed=9, drift_at=0.5)
    events = [r for r in recs if r.kind == "event"]
    assert _mean_amount(events[1000:]) > 1.4 * _mean_amount(events[:1000])
    recs = _records(count=2000, seed=9, disparity_at=0.5, disparity_group="B")
    events = [r for r in recs if r.kind == "event"]
    assert _mean_amount(events[1000:], "B") > 2 * _mean_amount(events[:1000], "B")
    assert _mean_amount(events[1000:], "A") < 1.3 * _mean_amount(events[:1000], "A")


def test_cli_writes_jsonl_files(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--config",
         str(REPO / "examples" / "quickstart.yaml"), "--count", "50", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
    )
    assert "events=50" in proc.stdout
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 50 and all(json.loads(line)["event_id"] for line in lines)
    assert (tmp_path / "labels.jsonl").read_text().count("\n") == 50
