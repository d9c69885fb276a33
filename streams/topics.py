"""Topic administration and reads outside the Faust loop (kafka-python).

``ensure_topics`` creates the configured topics with the right partitioning before a worker
or simulator starts (events and labels co-partitioned; model versions compacted).
``latest_model_version`` reads the compacted model topic so a restarted worker resumes
with the model it had.
"""

from __future__ import annotations

import contextlib
import json

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.config import Config
from streams.kafka_clients import kafka_python_options
from streams.records import ModelVersion

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
        t.training: (1, {}),
        t.model_versions: (1, compact),
        t.model_audit: (1, {}),
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


def latest_model_version(config: Config, timeout_seconds: float = 10.0) -> ModelVersion | None:
    """The newest snapshot on the model-versions topic for this config's name, if any."""
    consumer = KafkaConsumer(
        **kafka_python_options(config),
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_seconds * 1000),
    )
    try:
        tp = TopicPartition(config.topics.model_versions, 0)
        if consumer.partitions_for_topic(tp.topic) is None:
            return None
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        latest: ModelVersion | None = None
        while consumer.position(tp) < end:
            batch = consumer.poll(timeout_ms=1000)
            if not batch:
                break
            for msg in batch.get(tp, []):
                if msg.key == config.name.encode() and msg.value:
                    latest = ModelVersion.model_validate(json.loads(msg.value))
        return latest
    finally:
        consumer.close()
