"""A worker restarted on a data directory older than its changelogs (faust-streaming #158:
"persisted offset above the high-water mark"), on a real broker, state on RocksDB.

Every topic is deleted and created again (an environment reset, or a cluster rebuilt)
while a scorer is down; the scorer comes back on its old data directory, whose partition
databases persisted changelog offsets the new changelogs never reached. faust-streaming
refuses to recover such a partition (``ConsistencyError``) and the worker crash-loops.
The scorer discards, before Faust opens them, the databases whose persisted offset is at
or past their changelog's end (:mod:`streams.scorer.stale_state`): it is ready, and its
features for the new stream equal a replay of the new stream alone.

The other recovery bug of faust-streaming's RocksDB store, a changelog trimmed during
recovery (#651: the recovery waits for a record that is gone), cannot happen to the
scorer's changelogs: they are compacted only (no retention), and the broker refuses to
delete their records (tested here); compaction keeps each key's latest record and the
active segment, so the last offset a recovery waits for is always there.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from streams.config import Config, load_config
from streams.topics import changelog_topics, ensure_topics
from tests.e2e.test_slice import _assert_features_equal, _expected_features, _valid_events
from tests.support import Worker, free_port, produce, read_scored_for, wait_until

pytestmark = pytest.mark.kafka


def _recreate_every_topic(bootstrap: str, config: Config) -> None:
    topics = [*config.topics.model_dump(exclude={"partitions", "max_message_bytes"}).values(),
              *changelog_topics(config)]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([t for t in topics if t in set(admin.list_topics())])
        wait_until(lambda: not set(topics) & set(admin.list_topics()), 60,
                   "the topics to be deleted")
    finally:
        admin.close()
    deadline = time.monotonic() + 60
    while True:  # a topic marked for deletion cannot be created again for a moment
        try:
            ensure_topics(config)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_worker_on_a_data_directory_older_than_its_changelogs_discards_it(
    kafka_bootstrap: str, topic_config: Path, tmp_path: Path
) -> None:
    config = load_config(topic_config)
    assert config.state.store == "rocksdb"
    ensure_topics(config)
    old = _valid_events(config, count=150, seed=71)
    data_dir, port = tmp_path / "worker", free_port()
    worker = Worker(topic_config, port, data_dir)
    try:
        worker.start(120)
        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in old])
        read_scored_for(kafka_bootstrap, config.topics.scored, old)
        time.sleep(2.0)  # the last batch's commit follows its acknowledgement
    finally:
        worker.stop()

    _recreate_every_topic(kafka_bootstrap, config)
    new = _valid_events(config, count=150, seed=72)
    again = Worker(topic_config, port, data_dir)
    try:
        again.start(120)
        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in new])
        ids, scored = read_scored_for(kafka_bootstrap, config.topics.scored, new,
                                      timeout_seconds=60)
        assert {s["event_id"] for s in scored} == ids, again.log()
        expected = _expected_features(config, new)
        for rec in scored:
            _assert_features_equal(rec["features"], expected[rec["event_id"]],
                                   rec["event_id"])
        assert "discarded" in again.log_path.read_text(), "no word of the discarded state"
    finally:
        again.stop()


def test_the_broker_refuses_to_trim_a_changelog(kafka_bootstrap: str, topic_config: Path,
                                                 ) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    changelog = changelog_topics(config)[0]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        for i in range(3):
            producer.send(changelog, key=b"k%d" % i, value=b"v", partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        with pytest.raises(KafkaError, match="PolicyViolation"):
            admin.delete_records({TopicPartition(changelog, 0): 2})
    finally:
        admin.close()
