"""A backlog waits in aiokafka's buffer as bytes: the scorer's worker consumer parses at most
a batch of records per poll, so what a full collection walks does not grow with how far
the producers ran ahead (:mod:`streams.scorer.gc_bounds`). On the real broker."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from aiokafka.structs import ConsumerRecord, TopicPartition

from streams.config import load_config
from streams.scorer.app import faust_app
from streams.scorer.gc_bounds import POLL_RECORDS
from streams.topics import ensure_topics
from tests.support import free_port, produce

BACKLOG = 5_000


def test_a_poll_of_a_backlog_parses_at_most_a_batch_of_records(
    kafka_bootstrap: str, topic_config: Path, tmp_path: Path
) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    # One key: one partition, about 1 MiB, which one fetch brings in whole (faust's
    # consumer_max_fetch_size) and which a poll without a bound parsed at once.
    produce(kafka_bootstrap, config.topics.events, [("u1", b"x" * 180)] * BACKLOG)
    app = faust_app(config, free_port(), "127.0.0.1", tmp_path)

    async def poll() -> tuple[int, int, int]:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        await consumer.start()
        try:
            tps = [TopicPartition(config.topics.events, p)
                   for p in range(config.topics.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            got: dict[TopicPartition, list[ConsumerRecord]] = {}
            for _ in range(30):  # the first fetch lands within a second or two
                got = await consumer.getmany(timeout_ms=1000)
                if got:
                    break
            parsed = sum(1 for o in gc.get_objects() if type(o) is ConsumerRecord)
            polled = sum(len(records) for records in got.values())
            rest = 0
            for _ in range(2 * BACKLOG // POLL_RECORDS + 30):  # bounded: the whole backlog
                more = await consumer.getmany(timeout_ms=1000)
                rest += sum(len(records) for records in more.values())
                if polled + rest >= BACKLOG:
                    break
            return polled, parsed, polled + rest
        finally:
            await consumer.stop()

    polled, parsed, total = asyncio.run(poll())
    assert polled == POLL_RECORDS and parsed <= POLL_RECORDS
    assert total == BACKLOG  # nothing lost to the bound: the rest came poll by poll
