"""A bare faust-streaming agent that only iterates a topic's events: Faust's own floor.

Run by bench/scorer_bench.py as a subprocess (its own app, its own consumer group). It
counts events with ``async for e in stream.events(): pass``, and when it has seen
``--count`` writes ``{"count", "seconds"}`` (first event to last) to ``--out``; the parent
then stops it. Same app settings as the scorer where they matter (memory store, at least
once, commit every 10,000 records or 1 s, no leader topic, no spinner).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import faust


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True, help="host:port")
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    app = faust.App(
        args.group, broker=f"kafka://{args.broker}", store="memory://",
        datadir=args.data_dir, topic_partitions=args.partitions, topic_disable_leader=True,
        processing_guarantee="at_least_once", stream_wait_empty=False,
        broker_commit_every=10_000, broker_commit_interval=1.0,
    )
    app.conf.web_enabled = False
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=args.partitions)
    seen = {"n": 0, "first": 0.0}

    @app.agent(topic, concurrency=1)
    async def count(stream: Any) -> None:
        async for _ in stream.events():
            seen["n"] += 1
            if seen["n"] == 1:
                seen["first"] = time.perf_counter()
            if seen["n"] == args.count:
                took = time.perf_counter() - seen["first"]
                Path(args.out).write_text(json.dumps({"count": args.count, "seconds": took}))

    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # as the CLI does: the spinner sets the root logger to DEBUG
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
