"""Fresh scorers on fresh topics, with events produced at once: no crash, nothing lost.

A fresh worker once crash-looped on PartitionsMismatch (a changelog topic "has 0
partitions"): every topic the scorer needs, its tables' changelogs included, is now created
with the right partition count before any agent starts. Three times over, on topics that
do not exist yet, a scorer starts while events are already being produced.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from streams.config import load_config
from tests.e2e.test_slice import _valid_events
from tests.support import Worker, free_port, fresh_config, produce, read_scored_for

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("attempt", range(3))
def test_a_fresh_scorer_on_fresh_topics_with_events_already_flowing(
    kafka_bootstrap: str, tmp_path: Path, attempt: int
) -> None:
    path = fresh_config(tmp_path, kafka_bootstrap, "fresh", partitions=3)
    config = load_config(path)
    valid = _valid_events(config, count=150, seed=60 + attempt)
    worker = Worker(path, free_port(), tmp_path / "worker")
    # The scorer creates its topics; events are produced while it starts.
    producing = threading.Thread(target=produce, args=(
        kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in valid]))
    worker.start()
    producing.start()
    try:
        ids, scored = read_scored_for(kafka_bootstrap, config.topics.scored, valid, 90)
        producing.join(timeout=60)
        assert {s["event_id"] for s in scored} == ids, worker.log()
        log = worker.log()
        assert "PartitionsMismatch" not in log and "Crashed" not in log, log
        assert "restarting" not in log, "the supervisor never had to restart it"
        assert json.loads(json.dumps(scored[0]))["feature_set"] == config.features.identity
    finally:
        worker.stop()
