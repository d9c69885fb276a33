"""A broker outage mid-stream: the scorer rides it out without a person and loses nothing.

The broker is killed with SIGKILL while events flow, stays down for 30 s, and comes back
on the same port with the same data. The scorer's Faust app crashes while the broker is
away; its supervisor restarts it with backoff until the broker answers again; the new
worker recovers its tables and resumes from the committed offsets. Every event produced
gets a scored record, with exactly the brute-force features.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from streams.config import load_config
from streams.devtools.kafka_local import BrokerOptions, _read_pid, start, stop
from streams.topics import ensure_topics
from tests.conftest import free_broker_port
from tests.e2e.test_slice import _assert_features_equal, _expected_features, _valid_events
from tests.support import Worker, free_port, fresh_config, produce, read_scored_for, wait_until

pytestmark = pytest.mark.kafka

OUTAGE_SECONDS = 30.0


def test_the_scorer_rides_out_a_broker_killed_for_30_seconds(tmp_path: Path) -> None:
    broker = BrokerOptions(port=free_broker_port(), data_dir=tmp_path / "kafka")
    start(broker, log=print)
    worker = None
    try:
        path = fresh_config(tmp_path, broker.bootstrap, "outage")
        config = load_config(path)
        ensure_topics(config)
        valid = _valid_events(config, count=300, seed=23)
        before, after = valid[:150], valid[150:]

        worker = Worker(path, free_port(), tmp_path / "worker")
        worker.start()
        produce(broker.bootstrap, config.topics.events, [(r.key, r.value) for r in before])
        wait_until(lambda: worker.metric("streambed_events_total", outcome="scored")
                   >= len(before), 60, "the first half to be scored")

        pid = _read_pid(broker)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        down_since = time.monotonic()
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_since)))
        start(broker, log=print)

        produce(broker.bootstrap, config.topics.events, [(r.key, r.value) for r in after])
        ids, scored = read_scored_for(broker.bootstrap, config.topics.scored, valid, 180)
        assert {s["event_id"] for s in scored} == ids, (
            f"lost {sorted(ids - {s['event_id'] for s in scored})[:10]}\n{worker.log()}")
        expected = _expected_features(config, valid)
        for rec in scored:
            _assert_features_equal(rec["features"], expected[rec["event_id"]], rec["event_id"])
        assert worker.proc is not None and worker.proc.poll() is None, "the supervisor lives"
    finally:
        if worker is not None:
            worker.stop()
        stop(broker, log=print)
