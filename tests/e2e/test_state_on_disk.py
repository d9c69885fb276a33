"""The scorer's state on disk (``state.store: rocksdb``), on a real broker.

- Every changelog write lands in its partition's database with the changelog offset it
  landed at; a worker killed with SIGKILL and restarted on the same data directory replays
  only the changelog past that offset, and carries on with the same features as a replay
  of every event.
- A restarted worker rejoins its group as the same static member (group instance id).
- With two workers, killing one hands its partitions to the other, which scores them
  with features equal to replay, from the standby copies it kept as the changelog was
  written: the partitions it takes over are not restored from their changelogs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from rocksdict import AccessType, Options, Rdict

from streams.config import Config, load_config
from streams.scorer.app import group_instance_id
from streams.topics import ensure_topics
from tests.e2e.test_slice import _assert_features_equal, _expected_features, _valid_events
from tests.support import Worker, free_port, produce, read_scored_for, wait_until

pytestmark = pytest.mark.kafka
OFFSET_KEY = b"__faust\0offset__"
#: The scorer's broker_session_timeout (streams/scorer/app.py).
SESSION_TIMEOUT_SECONDS = 10.0


def _on_disk(path: Path) -> Path:
    raw = yaml.safe_load(path.read_text())
    raw.setdefault("state", {})["store"] = "rocksdb"
    path.write_text(yaml.safe_dump(raw))
    return path


def _events_on_disk(topic_config: Path, count: int, seed: int) -> tuple[Config, list, list]:
    """The config on the RocksDB store, its topics, and ``count`` valid events in halves."""
    config = load_config(_on_disk(topic_config))
    ensure_topics(config)
    valid = _valid_events(config, count=count, seed=seed)
    return config, valid[:count * 2 // 3], valid[count * 2 // 3:]


def _persisted(data_dir: Path, table: str) -> dict[int, int]:
    """Partition -> persisted changelog offset of each of a table's partition databases
    (read with the worker stopped: a database has one writer)."""
    out = {}
    for db_path in sorted(data_dir.rglob(f"*{table}-*.db")):
        partition = int(db_path.name.removesuffix(".db").rsplit("-", 1)[1])
        db = Rdict(str(db_path), options=Options(raw_mode=True),
                   access_type=AccessType.read_only())
        try:
            raw = db.get(OFFSET_KEY)
        finally:
            db.close()
        if raw is not None:
            out[partition] = int(raw)
    return out


def _changelog_ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        consumer.close()


def test_a_killed_worker_restarts_from_its_databases_with_features_equal_to_replay(
    kafka_bootstrap: str, topic_config: Path, tmp_path: Path
) -> None:
    config, before, after = _events_on_disk(topic_config, 300, 41)
    valid = before + after
    data_dir = tmp_path / "worker"
    port = free_port()
    worker = Worker(topic_config, port, data_dir)
    worker.start()
    try:
        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in before])
        ids, _ = read_scored_for(kafka_bootstrap, config.topics.scored, before)
        # The entity states are a later step of the publish: wait for them to land.
        changelog = f"streambed-{config.name}-entities-changelog"
        wait_until(lambda: sum(_changelog_ends(kafka_bootstrap, changelog).values()) > 0,
                   30, "entity states on their changelog")
        time.sleep(2.0)  # the last batch's commit follows its acknowledgement
    finally:
        worker.kill()
    persisted = _persisted(data_dir, "entities")
    ends = _changelog_ends(kafka_bootstrap, changelog)
    assert persisted, f"no entities database under {data_dir}"
    for partition, end in ends.items():
        if end:  # persisted at or below the last record, never past it (faust #158)
            assert 0 <= persisted.get(partition, -1) < end, (partition, persisted, ends)
    # Restart on the same data directory and port: the state comes from the databases.
    again = Worker(topic_config, port, data_dir)
    again.start()
    try:
        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in after])
        ids, scored = read_scored_for(kafka_bootstrap, config.topics.scored, valid)
        assert {s["event_id"] for s in scored} == ids, again.log()
        expected = _expected_features(config, valid)
        for rec in scored:
            _assert_features_equal(rec["features"], expected[rec["event_id"]],
                                   rec["event_id"])
    finally:
        again.stop()


def _member_ids(bootstrap: str, group: str) -> list[str]:
    """The group's member ids (the broker makes a static member's id from its group
    instance id: ``<instance id>-<uuid>``)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (described,) = admin.describe_consumer_groups([group])
        return [m.member_id for m in described.members]
    finally:
        admin.close()


def test_a_restarted_worker_rejoins_as_the_same_static_member(
    kafka_bootstrap: str, topic_config: Path, tmp_path: Path
) -> None:
    config = load_config(_on_disk(topic_config))
    ensure_topics(config)
    group = f"streambed-{config.name}"
    data_dir = tmp_path / "worker"
    port = free_port()    # restarted on the same port, as its supervisor does
    instance = group_instance_id(group, data_dir, port)
    worker = Worker(topic_config, port, data_dir)
    worker.start()
    try:
        wait_until(lambda: worker.metric("streambed_assigned_partitions") > 0, 60,
                   "partitions assigned")
        (first,) = _member_ids(kafka_bootstrap, group)
        assert first.startswith(instance + "-"), (first, instance)
    finally:
        worker.kill()
    killed = time.monotonic()
    again = Worker(topic_config, port, data_dir)
    again.start()
    try:
        wait_until(lambda: again.metric("streambed_assigned_partitions")
                   == config.topics.partitions, 60, "partitions assigned again")
        took = time.monotonic() - killed
        (member,) = _member_ids(kafka_bootstrap, group)  # the old one is not waited for
        assert member.startswith(instance + "-"), (member, instance)
        print(f"kill -> partitions assigned to the restarted worker: {took:.1f} s")
    finally:
        again.stop()


def test_killing_one_of_two_workers_hands_its_partitions_to_the_other(
    kafka_bootstrap: str, topic_config: Path, tmp_path: Path
) -> None:
    config, first, second = _events_on_disk(topic_config, 300, 43)
    valid = first + second
    one = Worker(topic_config, free_port(), tmp_path / "one", loglevel="info")
    two = Worker(topic_config, free_port(), tmp_path / "two")
    one.start()
    two.start()
    try:
        wait_until(lambda: one.metric("streambed_assigned_partitions") > 0
                   and two.metric("streambed_assigned_partitions") > 0, 90,
                   "both workers assigned")
        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in first])
        read_scored_for(kafka_bootstrap, config.topics.scored, first)
        before = len(one.log_path.read_text(errors="replace"))
        two.kill()
        killed = time.monotonic()
        produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in second])
        ids, scored = read_scored_for(kafka_bootstrap, config.topics.scored, valid,
                                      timeout_seconds=SESSION_TIMEOUT_SECONDS + 60)
        took = time.monotonic() - killed
        assert {s["event_id"] for s in scored} == ids, one.log()
        print(f"kill -> every event of the killed worker's partitions scored: {took:.1f} s")
        # The target is the session timeout + 10 s (measured 9.0-14.3 s on a loaded
        # machine, 21.8 s once on CI's): the test holds a bound with room for a slow run,
        # the figure is in BENCHMARKS.md ("Scorer: standby takeover").
        assert took <= SESSION_TIMEOUT_SECONDS + 40, took
        # Taken over from standby copies: the changelog partitions of the killed worker's
        # tables were already this worker's (as standbys, read as they were written), so
        # nothing was restored in bulk (streams.scorer.restore logs each bulk restore at
        # INFO); faust's recovery read only what its standby buffer had not applied yet.
        after = one.log_path.read_text(errors="replace")[before:]
        assert "Setting newly assigned partitions" in after, after[-3000:]
        assert "in bulk from the changelog" not in after, after[-3000:]
        expected = _expected_features(config, valid)
        for rec in scored:
            _assert_features_equal(rec["features"], expected[rec["event_id"]],
                                   rec["event_id"])
    finally:
        one.stop()
        two.kill()

