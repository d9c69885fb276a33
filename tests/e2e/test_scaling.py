"""Two workers in one consumer group share the partitions, and a rebalance loses nothing.

A second worker joins while events flow; partitions move, tables follow through their
changelogs, and every event is scored with exactly the brute-force features.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import load_config
from streams.topics import ensure_topics
from tests.e2e.test_slice import _assert_features_equal, _expected_features, _valid_events
from tests.support import free_port, produce, read_scored_for, read_topic, wait_until

pytestmark = pytest.mark.kafka


def test_a_second_worker_takes_partitions_over_without_losing_or_corrupting_state(
    kafka_bootstrap: str, topic_config: Path, worker_factory
) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    valid = _valid_events(config, count=400, seed=17)
    first, second = valid[:150], valid[150:]

    one = worker_factory(topic_config, free_port())
    produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in first])
    assert len(read_topic(kafka_bootstrap, config.topics.scored, len(first))) >= len(first)

    two = worker_factory(topic_config, free_port())  # joins the group: partitions move
    wait_until(lambda: two.metric("streambed_assigned_partitions") > 0
               and one.metric("streambed_assigned_partitions") < config.topics.partitions,
               60, "the rebalance to give the second worker partitions")
    produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in second])
    ids, scored = read_scored_for(kafka_bootstrap, config.topics.scored, valid)
    assert {s["event_id"] for s in scored} == ids, "no event lost across the rebalance"
    expected = _expected_features(config, valid)
    for rec in scored:
        _assert_features_equal(rec["features"], expected[rec["event_id"]], rec["event_id"])
    served = [w.metric("streambed_events_total", outcome="scored") for w in (one, two)]
    assert all(n > 0 for n in served), f"both workers scored events: {served}"
