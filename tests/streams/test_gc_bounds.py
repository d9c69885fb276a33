"""A backlog waits in aiokafka's buffer as bytes: the scorer's worker consumer parses at most
a batch of records per poll, so what a full collection walks does not grow with how far
the producers ran ahead, and the partitions behind take short turns, so none looks idle
while the others are read (:mod:`streams.scorer.gc_bounds`). On the real broker."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from aiokafka.structs import ConsumerRecord, TopicPartition
from kafka import KafkaProducer

from streams.config import load_config
from streams.scorer.app import faust_app
from streams.scorer.gc_bounds import FETCH_BYTES, POLL_RECORDS
from streams.topics import ensure_topics
from tests.support import free_port, fresh_config

#: Partitions behind, and records each (about 400 KiB: one fetch brought them in whole with
#: faust's default consumer_max_fetch_size of 1 MiB, and a poll without a bound parsed
#: every partition's at once).
PARTITIONS = 6
BACKLOG = 2_000


def test_a_backlog_is_parsed_a_poll_at_a_time_with_every_partition_taking_turns(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = load_config(fresh_config(tmp_path, kafka_bootstrap, partitions=PARTITIONS))
    ensure_topics(config)
    partitions = list(range(PARTITIONS))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    for p in partitions:
        for i in range(BACKLOG):
            producer.send(config.topics.events, key=b"u%d" % i, value=b"x" * 180, partition=p)
    producer.flush(timeout=60)
    producer.close()
    app = faust_app(config, free_port(), "127.0.0.1", tmp_path)

    async def poll() -> tuple[list[dict[int, int]], int]:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        assert consumer._max_partition_fetch_bytes == FETCH_BYTES
        await consumer.start()
        polls: list[dict[int, int]] = []
        most_parsed = 0
        try:
            tps = [TopicPartition(config.topics.events, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for _ in range(4 * PARTITIONS * BACKLOG // 300 + 60):  # bounded
                got = await consumer.getmany(timeout_ms=1000)
                most_parsed = max(most_parsed, sum(
                    1 for o in gc.get_objects() if type(o) is ConsumerRecord))
                polls.append({tp.partition: len(records) for tp, records in got.items()})
                del got
                if sum(sum(p.values()) for p in polls) >= len(partitions) * BACKLOG:
                    break
            return polls, most_parsed
        finally:
            await consumer.stop()

    polls, most_parsed = asyncio.run(poll())
    assert sum(sum(p.values()) for p in polls) == len(partitions) * BACKLOG  # nothing lost
    assert max(sum(p.values()) for p in polls) == POLL_RECORDS
    assert most_parsed <= POLL_RECORDS
    # The longest any partition with records left went without any, in records delivered
    # meanwhile: about two polls with 64 KiB fetches; with 1 MiB fetches every partition's
    # whole backlog went before the next's (10,000 records for the last).
    left = dict.fromkeys(partitions, BACKLOG)
    waited = dict.fromkeys(partitions, 0)
    longest_wait = 0
    for got in polls:
        for p in partitions:
            waited[p] = 0 if got.get(p) or not left[p] else waited[p] + sum(got.values())
            left[p] -= got.get(p, 0)
        longest_wait = max(longest_wait, *waited.values())
    assert longest_wait <= 3 * POLL_RECORDS, longest_wait
