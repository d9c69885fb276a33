"""Bare faust-streaming agents: Faust's own floor, iterating and producing.

Run by bench/scorer_bench.py as a subprocess (its own app, its own consumer group). Two
modes:

- iterate (default): ``async for e in stream.events(): pass``;
- ``--produce-to TOPIC``: the scorer's I/O without its work: the agent takes batches
  (Faust's ``take_events``, at most 1,000 records / 50 ms), produces one record per event
  (its value, to the same partition of ``TOPIC``, modulo its partitions) as one closed
  producer batch per partition, and awaits the batch's acknowledgements before it takes
  the next.

When it has seen ``--count`` events it writes ``{"count", "seconds"}`` (from the first
event in hand to the last one iterated, or to the last acknowledgement when producing) to
``--out``; the parent then stops it. Same app settings as the scorer where they matter
(memory store, at least once, acks from every replica, linger 5 ms, producer batches up to
1 MiB, commit every 10,000 records or 1 s, no leader topic, no spinner).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import faust

#: The scorer's batch bounds (streams/scorer/batching.py), as Faust's take_events has them.
BATCH_MAX_RECORDS, BATCH_WITHIN_SECONDS = 1000, 0.05


async def produce_batch(app: faust.App, topic: str, events: list[Any]) -> None:
    """One producer batch per partition, closed (sent without lingering), acks awaited."""
    aio = app.producer._ensure_producer()
    await aio.client._wait_on_metadata(topic)  # send_batch needs the topic's partitions
    partitions = len(aio.client.cluster.partitions_for_topic(topic))
    by_partition: dict[int, list[Any]] = {}
    for event in events:
        by_partition.setdefault(event.message.partition % partitions, []).append(event.message)
    futures = []
    for partition, messages in by_partition.items():
        batch = aio.create_batch()
        for m in messages:
            if batch.append(key=m.key, value=m.value, timestamp=None) is None:
                batch.close()
                futures.append(await aio.send_batch(batch, topic, partition=partition))
                batch = aio.create_batch()
                batch.append(key=m.key, value=m.value, timestamp=None)
        batch.close()
        futures.append(await aio.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*futures)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True, help="host:port")
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--produce-to", help="produce one record per event to this topic")
    args = p.parse_args()

    app = faust.App(
        args.group, broker=f"kafka://{args.broker}", store="memory://",
        datadir=args.data_dir, topic_partitions=args.partitions, topic_disable_leader=True,
        processing_guarantee="at_least_once", stream_wait_empty=False,
        producer_acks=-1, producer_linger=0.005, producer_max_batch_size=1_048_588,
        broker_commit_every=10_000, broker_commit_interval=1.0,
    )
    app.conf.web_enabled = False
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=args.partitions)
    seen = {"n": 0, "first": 0.0}

    def start() -> None:
        if not seen["first"]:
            seen["first"] = time.perf_counter()

    def count(n: int) -> None:
        seen["n"] += n
        if seen["n"] >= args.count and not Path(args.out).exists():
            took = time.perf_counter() - seen["first"]
            Path(args.out).write_text(json.dumps({"count": seen["n"], "seconds": took}))

    if args.produce_to:
        @app.agent(topic, concurrency=1)
        async def produce(stream: Any) -> None:
            async for events in stream.take_events(BATCH_MAX_RECORDS, BATCH_WITHIN_SECONDS):
                start()  # the clock starts with the first batch in hand
                await produce_batch(app, args.produce_to, events)
                count(len(events))
    else:
        @app.agent(topic, concurrency=1)
        async def iterate(stream: Any) -> None:
            async for _ in stream.events():
                start()
                count(1)

    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # as the CLI does: the spinner sets the root logger to DEBUG
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
