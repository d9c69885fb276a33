"""A partition database restored in bulk from its changelog on the real broker: the
values and tombstones faust's recovery would write, the persisted offset of the last
record, and a second catch-up that reads only what came after it. And its deadline: a
partition that cannot be fetched, or a broker that has gone away (it takes connections and
never answers), ends the bulk restore within its time, and what is left is faust's."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from aiokafka import TopicPartition
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.scorer import restore
from streams.scorer.restore import CatchUp, bulk_restore, catch_up, new_consumer, stop_within
from streams.scorer.tables import DirectoryPartitions
from tests.support import free_port

#: A bulk restore's deadline in these tests, and the slack allowed past it.
DEADLINE_SECONDS, SLACK_SECONDS = 3.0, 3.0


def _send(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key, value in records:
        producer.send(topic, key=key, value=value, partition=1)
    producer.flush(timeout=60)
    producer.close()


def test_catch_up_writes_the_changelog_and_its_offset_then_only_what_is_new(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"cl-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    first = [(f"k{i % 300}".encode(), f"v{i}".encode()) for i in range(1_000)]
    first.append((b"k7", None))  # a tombstone: the key is deleted
    _send(kafka_bootstrap, topic, first)
    dbs = DirectoryPartitions(tmp_path, "entities", [1])
    db, key = dbs.dbs[1], DirectoryPartitions.offset_key
    client = {"bootstrap_servers": kafka_bootstrap}

    async def restore() -> int:
        consumer = await new_consumer(client)
        try:
            return await catch_up(consumer, {TopicPartition(topic, 1): db,
                                             TopicPartition(topic, 0): empty}, key)
        finally:
            # aiokafka's stop can wait forever after a catch-up that fetched nothing (every
            # partition paused, then unassigned): the scorer's own stop is bounded too.
            await stop_within(consumer, 10)

    empty = DirectoryPartitions(tmp_path, "entities", [0]).dbs[0]
    assert asyncio.run(restore()) == 1_001
    assert db.get(key) == b"1000"  # the offset of the last record, as faust persists it
    assert db.get(b"k7") is None and db.get(b"k8") == b"v908" and db.get(b"k299") == b"v899"
    assert sum(1 for k in db.keys() if k != key) == 299  # noqa: SIM118

    _send(kafka_bootstrap, topic, [(b"k8", b"new"), (b"k7", b"back")])
    assert asyncio.run(restore()) == 2  # only what came after
    assert db.get(b"k8") == b"new" and db.get(b"k7") == b"back" and db.get(key) == b"1002"
    assert asyncio.run(restore()) == 0
    assert empty.get(key) is None  # an empty partition: nothing written, no offset
    dbs.close()


def _topic(bootstrap: str, partitions: int) -> str:
    topic = f"cl-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()
    return topic


def test_a_log_that_ends_past_its_last_record_is_restored_without_waiting(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A transaction's commit marker takes the offset after the last record: the end
    offset is never the offset of a record plus one."""
    from aiokafka import AIOKafkaProducer

    topic = _topic(kafka_bootstrap, 1)
    dbs = DirectoryPartitions(tmp_path, "entities", [0])
    key = DirectoryPartitions.offset_key

    async def run() -> tuple[CatchUp, float]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap,
                                    transactional_id=f"tx-{topic}")
        await producer.start()
        try:
            async with producer.transaction():
                for i in range(3):
                    await producer.send_and_wait(topic, b"v%d" % i, key=b"k%d" % i,
                                                 partition=0)
        finally:
            await producer.stop()
        consumer = await new_consumer({"bootstrap_servers": kafka_bootstrap})
        try:
            began = time.monotonic()
            done = await bulk_restore(lambda: _ready(consumer),
                                      {TopicPartition(topic, 0): dbs.dbs[0]}, key, 30.0)
            return done, time.monotonic() - began
        finally:
            await stop_within(consumer, 10)

    done, took = asyncio.run(run())
    assert done == CatchUp(records=3, finished=True) and took < 10, took
    assert dbs.dbs[0].get(b"k2") == b"v2" and dbs.dbs[0].get(key) == b"2"
    dbs.close()


def test_a_partition_that_cannot_be_fetched_ends_the_restore_at_its_deadline(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = _topic(kafka_bootstrap, 2)
    _send(kafka_bootstrap, topic, [(b"k", b"v")])
    dbs = DirectoryPartitions(tmp_path, "entities", [1, 5])
    key = DirectoryPartitions.offset_key
    client = {"bootstrap_servers": kafka_bootstrap}

    async def run() -> tuple[CatchUp, float]:
        consumer = await new_consumer(client)
        try:
            began = time.monotonic()
            done = await bulk_restore(lambda: _ready(consumer),
                                      {TopicPartition(topic, 1): dbs.dbs[1],
                                       TopicPartition(topic, 5): dbs.dbs[5]},  # no such one
                                      key, DEADLINE_SECONDS)
            return done, time.monotonic() - began
        finally:
            await stop_within(consumer, 10)

    done, took = asyncio.run(run())
    assert done == CatchUp(records=0, finished=False)
    assert DEADLINE_SECONDS <= took < DEADLINE_SECONDS + SLACK_SECONDS, took
    assert dbs.dbs[1].get(key) is None and dbs.dbs[5].get(key) is None  # faust's to read
    dbs.close()


async def _ready(consumer: object) -> object:
    return consumer


def test_a_broker_gone_away_ends_the_restore_at_its_deadline(tmp_path: Path) -> None:
    """The bootstrap address takes connections and never answers (a broker hung, or gone
    behind something that still accepts): the consumer's start would wait out aiokafka's
    request timeout, and the rebalance with it."""
    dbs = DirectoryPartitions(tmp_path, "entities", [0])
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing

    async def run() -> tuple[CatchUp, float]:
        port = free_port()
        server = await asyncio.start_server(silent, "127.0.0.1", port)
        try:
            began = time.monotonic()
            done = await bulk_restore(
                lambda: new_consumer({"bootstrap_servers": f"127.0.0.1:{port}"}),
                {TopicPartition("cl", 0): dbs.dbs[0]}, DirectoryPartitions.offset_key,
                DEADLINE_SECONDS)
            took = time.monotonic() - began
            for task in list(restore._STOPPING):  # the half-started consumer's stop
                await asyncio.wait_for(task, restore.STOP_SECONDS + 1)
            return done, took
        finally:
            for writer in held:
                writer.close()
            server.close()

    done, took = asyncio.run(run())
    assert done == CatchUp(records=0, finished=False)
    assert DEADLINE_SECONDS <= took < DEADLINE_SECONDS + SLACK_SECONDS, took
    dbs.close()


def test_a_consumer_that_does_not_stop_is_left_within_the_bound() -> None:
    class Stuck:
        async def stop(self) -> None:
            await asyncio.Event().wait()

    began = time.monotonic()
    assert asyncio.run(stop_within(Stuck(), 0.5)) is False
    assert time.monotonic() - began < 0.5 + SLACK_SECONDS


def test_the_tables_of_one_rebalance_share_one_deadline() -> None:
    class App:  # what the deadline reads of a faust app
        conf = SimpleNamespace(broker_rebalance_timeout=60.0)

    app = App()
    first = restore._deadline(app, 7, now=100.0)
    assert first == 100.0 + restore.DEADLINE_SHARE * 60.0
    assert restore._deadline(app, 7, now=120.0) == first  # the next table: what is left
    assert restore._deadline(app, 8, now=200.0) == 200.0 + restore.DEADLINE_SHARE * 60.0
