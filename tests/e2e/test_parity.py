"""Online/offline parity on the real broker: what the worker scored is what replay computes.

The worker scores a simulated stream with out-of-order arrivals, late events and malformed
records; then ``streambed replay --from-kafka --order arrival`` reads the same topic. For
every event the features in ``scored`` equal those in the training set (1e-9 relative),
the same events are left out, and the labels joined are the labels on the topic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.topics import ensure_topics
from tests.support import REPO, free_port, json_values, produce_to, read_topic, wait_until

pytestmark = pytest.mark.kafka


def test_replay_from_kafka_in_arrival_order_equals_what_the_worker_scored(
    kafka_bootstrap: str, topic_config: Path, worker_factory, tmp_path: Path
) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    opts = SimulationOptions(count=1500, seed=23, entities=40, malformed_ratio=0.05,
                             disorder_ms=400_000, mean_gap_ms=10_000, label_ratio=0.6)
    records = list(Simulator(config, opts).records())
    topics = {"event": config.topics.events, "label": config.topics.labels}
    worker = worker_factory(topic_config, free_port())
    produce_to(kafka_bootstrap, [(topics[r.kind], r.key, r.value) for r in records])

    events = [r for r in records if r.kind == "event"]
    wait_until(lambda: sum(worker.metric("streambed_events_total", outcome=o)
                           for o in ("scored", "rejected", "late")) == len(events),
               90, "every event to be scored or dead-lettered")
    late = worker.metric("streambed_events_total", outcome="late")
    assert late > 0, "the disorder exceeds the lateness sometimes: some events are late"
    n_scored = int(worker.metric("streambed_events_total", outcome="scored"))
    scored = {s["event_id"]: s for s in json_values(
        read_topic(kafka_bootstrap, config.topics.scored, n_scored))}
    assert len(scored) == n_scored

    out = tmp_path / "train.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--config", str(topic_config),
         "--from-kafka", "--order", "arrival", "--labels", "kafka", "--out", str(out),
         "--no-progress"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"late={int(late)}" in proc.stdout, proc.stdout
    train = pd.read_parquet(out)
    labelled = {json.loads(r.value)["event_id"] for r in records if r.kind == "label"}
    assert set(train["event_id"]) == labelled & set(scored), "one row per labelled, scored event"

    mismatches = []
    for row in train.to_dict(orient="records"):
        online = scored[row["event_id"]]["features"]
        for name in config.features.names:
            want, got = online[name], row[name]
            if want is None:
                if not pd.isna(got):
                    mismatches.append((row["event_id"], name, got, want))
            elif got != pytest.approx(want, rel=1e-9, abs=1e-12):
                mismatches.append((row["event_id"], name, got, want))
    assert not mismatches, f"{len(mismatches)} feature values differ, e.g. {mismatches[:5]}"
