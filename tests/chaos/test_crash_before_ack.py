"""A scorer dies after a batch's table writes are made but before their changelog records
are acknowledged, and its partitions move to the other scorer: the other's features equal
a replay of every event, nothing is lost, one outcome per event. On a real broker, state
on RocksDB.

The crash point needs no hook in the scorer: the broker itself refuses one changelog
topic of the batch's second step (its ``max.message.bytes`` set below any record batch, so
every produce to it fails and the scorer retries it with backoff; ``min.insync.replicas``
would not do on one broker: Kafka 4 caps it at the replication factor). That holds the
scorer exactly there: the batch's outputs and first-step changelogs landed, the other
changelog of the second step landed, the batch's table writes wait in memory (never
written to its RocksDB databases, which only take acknowledged writes), and its input
offsets are not acknowledged. The broker shows it is there (the batch's other changelog
grew, the refused one did not); the scorer is then killed with SIGKILL, the topic accepts
writes again, and the other scorer takes its partitions after the session timeout.

The two cases are the two halves of the second step landing without the other:

- ``partitions`` refused: the batch's entity states landed on their changelog, never
  acknowledged to the scorer that wrote them; the new owner reads them (its standby
  replica did) and must not apply the redelivered events twice;
- ``entities`` refused: the positions landed, the entity states did not; the new owner
  must apply the redelivered events to the states before them.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from streams.config import load_config
from streams.topics import ensure_topics, scorer_app_id
from tests.e2e.test_slice import _assert_features_equal, _expected_features, _valid_events
from tests.support import Worker, free_port, produce, read_scored_for, read_topic, wait_until

pytestmark = pytest.mark.kafka
#: The scorer's broker_session_timeout (streams/scorer/app.py).
SESSION_TIMEOUT_SECONDS = 10.0
#: The second step's other changelog.
OTHER = {"partitions": "entities", "entities": "partitions"}


def _ready(worker: Worker) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/ready",
                                timeout=5) as resp:
        return json.load(resp)


def _assigned(worker: Worker) -> float:
    """The events partitions a worker holds (0 until its /metrics answers)."""
    assert worker.proc is not None and worker.proc.poll() is None, worker.log()
    try:
        return worker.metric("streambed_assigned_partitions")
    except OSError:
        return 0.0


def _end(bootstrap: str, topic: str, partition: int) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tp = TopicPartition(topic, partition)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def _refuse(bootstrap: str, topic: str, refuse: bool) -> None:
    """Make the broker refuse every record on a changelog topic (its ``max.message.bytes``
    below any record batch: MESSAGE_TOO_LARGE, which the producer does not retry and the
    scorer does, with backoff), or take them again. Its other setting, compaction, is given
    again: the admin call replaces the topic's whole configuration."""
    configs = {"cleanup.policy": "compact"}
    if refuse:
        configs["max.message.bytes"] = "1"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        response = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                       configs=configs)])
    finally:
        admin.close()
    ((code, message, *_),) = response.resources
    assert code == 0, (topic, configs, message)


@pytest.mark.parametrize("refused", ["partitions", "entities"])
def test_a_crash_before_the_changelog_ack_then_a_partition_move_keeps_replay_parity(
    kafka_bootstrap: str, topic_config: Path, tmp_path: Path, refused: str
) -> None:
    config = load_config(topic_config)
    assert config.state.store == "rocksdb"
    ensure_topics(config)
    valid = _valid_events(config, count=240, seed=61)
    first, held, after = valid[:100], valid[100:160], valid[160:]
    changelog = f"{scorer_app_id(config)}-{refused}-changelog"
    one = Worker(topic_config, free_port(), tmp_path / "one")
    two = Worker(topic_config, free_port(), tmp_path / "two")
    try:
        one.start(wait=False)  # the two start side by side
        two.start(120)
        wait_until(lambda: _assigned(one) > 0 and _assigned(two) > 0, 120,
                   "both workers assigned")
        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in first])
        read_scored_for(kafka_bootstrap, config.topics.scored, first)

        (mine,) = _ready(two)["assigned_partitions"]  # events partition = table partition
        landed = f"{scorer_app_id(config)}-{OTHER[refused]}-changelog"
        before = {t: _end(kafka_bootstrap, t, mine) for t in (changelog, landed)}
        _refuse(kafka_bootstrap, changelog, True)
        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in held])
        # The held batch's second step was sent: its other changelog landed. Its outputs
        # went first (the two-step publish), so they are out too.
        wait_until(lambda: _end(kafka_bootstrap, landed, mine) > before[landed], 60,
                   f"worker two's second step on {landed}")
        two.kill()
        killed = time.monotonic()
        assert _end(kafka_bootstrap, changelog, mine) == before[changelog], \
            f"the broker took {changelog} records it was meant to refuse"
        _refuse(kafka_bootstrap, changelog, False)

        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in after])
        ids, scored = read_scored_for(kafka_bootstrap, config.topics.scored, valid,
                                      timeout_seconds=SESSION_TIMEOUT_SECONDS + 60)
        assert {s["event_id"] for s in scored} == ids, one.log()
        print(f"{refused} refused; kill -> every event scored: "
              f"{time.monotonic() - killed:.1f} s")
        assert _assigned(one) == config.topics.partitions, one.log()
        # One outcome per event: no valid event dead-lettered; a scored record sent again
        # (the held batch's, at least once) is the same record.
        letters = read_topic(kafka_bootstrap, config.topics.dlq, 0, timeout_seconds=10)
        assert letters == [], ([json.loads(m.value) for m in letters][:3], one.log())
        expected = _expected_features(config, valid)
        by_id: dict[str, dict] = {}
        for rec in scored:
            _assert_features_equal(rec["features"], expected[rec["event_id"]],
                                   rec["event_id"])
            first_sent = by_id.setdefault(rec["event_id"], rec)
            assert first_sent["score"] == rec["score"], (first_sent, rec)
        print(f"scored records: {len(scored)} for {len(ids)} events")
    finally:
        one.stop()
        two.kill()
