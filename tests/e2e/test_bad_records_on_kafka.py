"""The shared table of bad records (``tests/bad_events.py``) through the real broker: the
worker dead-letters each with a reason and detail, and ``streambed replay --from-kafka``
rejects the same record, at the same partition and offset, with the same reason and detail.

``tests/streams/test_replay_checks.py`` holds both validators to the table in process; this
is the same claim where it matters, on records as the broker hands them to each (the Kafka
record timestamp is the receipt time both judge at).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaProducer

from streams.config import load_config
from streams.topics import ensure_topics
from tests.bad_events import BAD_EVENTS, NOW_MS
from tests.support import REPO, free_port, json_values, read_topic, wait_until

pytestmark = pytest.mark.kafka


def test_the_worker_and_replay_reject_each_bad_record_alike(
    kafka_bootstrap: str, topic_config: Path, worker_factory, tmp_path: Path
) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    bad = [(name, raw, reason) for name, raw, reason in BAD_EVENTS if reason is not None]
    good = next(raw for name, raw, _ in BAD_EVENTS if name == "good")  # replay writes it
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                             enable_idempotence=True, max_request_size=4 * 1024 * 1024)
    try:
        for raw in [*(raw for _, raw, _ in bad), good]:
            producer.send(config.topics.events, key=b"u1", value=raw, timestamp_ms=NOW_MS)
        producer.flush()
    finally:
        producer.close()

    worker = worker_factory(topic_config, free_port())
    wait_until(lambda: worker.metric("streambed_events_total", outcome="rejected")
               == len(bad), 90, "every bad record dead-lettered")
    online = {}
    for letter in json_values(read_topic(kafka_bootstrap, config.topics.dlq, len(bad))):
        source = letter["source"]
        online[f"partition {source['partition']} offset {source['offset']}"] = (
            letter["reason"], letter["detail"])

    rejects = tmp_path / "rejects.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--config", str(topic_config),
         "--from-kafka", "--out", str(tmp_path / "out.parquet"), "--rejects", str(rejects),
         "--no-progress"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    offline = {row["where"]: (row["reason"], row["detail"])
               for row in pd.read_csv(rejects, keep_default_na=False).to_dict("records")}

    assert len(online) == len(bad), json.dumps(online, indent=1)
    assert offline == online
    assert sorted(reason for reason, _ in online.values()) == sorted(r for _, _, r in bad)
