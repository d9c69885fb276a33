"""Topic administration and reads outside the Faust loop (kafka-python).

``ensure_topics`` creates the configured topics with the right partitioning before a worker,
the learner or the simulator starts (events and labels co-partitioned; the scorer's
changelogs with the partitions of its input; model versions and the learner's snapshot
compacted; the training log and the audit trail kept forever). ``read_all`` reads a
one-partition topic from its start to its end.
"""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.config import Config
from streams.kafka_clients import kafka_python_options

#: The scorer's tables (Faust names their changelogs ``<app id>-<table>-changelog``).
SCORER_TABLES = ("entities", "pending", "held", "partitions")


def scorer_app_id(config: Config) -> str:
    return f"streambed-{config.name}"


def changelog_topics(config: Config) -> list[str]:
    return [f"{scorer_app_id(config)}-{name}-changelog" for name in SCORER_TABLES]


def ensure_topics(config: Config) -> list[str]:
    """Create missing topics, the tables' changelogs included, each with its partition
    count, before any agent starts (a Faust worker that finds a changelog topic without
    partitions crash-loops on PartitionsMismatch). Return the names created; existing
    topics are left alone."""
    t = config.topics
    compact = {"cleanup.policy": "compact"}
    wanted = {
        t.events: (t.partitions, {}),
        t.labels: (t.partitions, {}),
        t.scored: (t.partitions, {}),
        t.dlq: (1, {}),
        # The training log is the lineage of every version: kept forever, never compacted.
        t.training: (1, {"retention.ms": "-1", "retention.bytes": "-1"}),
        t.model_versions: (1, compact),
        t.model_audit: (1, {"retention.ms": "-1", "retention.bytes": "-1"}),
        t.model_commands: (1, {}),
        t.learner_state: (1, compact),
        **{name: (t.partitions, compact) for name in changelog_topics(config)},
    }
    admin = KafkaAdminClient(**kafka_python_options(config), client_id="streambed-admin")
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=parts, replication_factor=1, topic_configs=conf)
            for name, (parts, conf) in wanted.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(missing)
        return [n.name for n in missing]
    finally:
        admin.close()


def end_offsets(config: Config, topic: str, partitions: list[int]) -> dict[int, int]:
    """The offset the next record of each partition of ``topic`` would get."""
    consumer = KafkaConsumer(**kafka_python_options(config))
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        consumer.close()


def read_all(config: Config, topic: str, timeout_seconds: float = 10.0,
             ) -> list[tuple[int, bytes | None, bytes | None, int]]:
    """Every record of partition 0 of ``topic``, from its start to its current end:
    ``(offset, key, value, timestamp_ms)``. Empty when the topic does not exist."""
    consumer = KafkaConsumer(**kafka_python_options(config),
                             enable_auto_commit=False, max_partition_fetch_bytes=8 << 20,
                             fetch_max_bytes=64 << 20,
                             receive_message_max_bytes=(64 << 20) + (1 << 20))
    try:
        if consumer.partitions_for_topic(topic) is None:
            return []
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out = []
        deadline = time.monotonic() + timeout_seconds
        while consumer.position(tp) < end and time.monotonic() < deadline:
            for msg in consumer.poll(timeout_ms=500).get(tp, []):
                if msg.offset < end:
                    out.append((msg.offset, msg.key, msg.value, msg.timestamp))
        if consumer.position(tp) < end:
            raise RuntimeError(f"could not read {topic} to its end ({end}) in "
                               f"{timeout_seconds:.0f} s")
        return out
    finally:
        consumer.close()
