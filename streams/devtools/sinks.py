"""Where the simulator writes (Kafka topics keyed by entity, or JSONL files), and how fast."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import IO

from kafka import KafkaProducer

from streams.config import Config
from streams.devtools.simulate import SimRecord
from streams.kafka_clients import kafka_python_options


class Pacer:
    """Paces a source to ``per_second`` items (0: as fast as possible), like a live feed."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.count = 0
        self.began = time.monotonic()

    def tick(self) -> None:
        """Count one item, sleeping first if the source is ahead of its rate."""
        self.count += 1
        if self.per_second:
            ahead = self.count / self.per_second - (time.monotonic() - self.began)
            if ahead > 0:
                time.sleep(ahead)


class KafkaSink:
    """Produces events and labels to the configured topics, keyed by entity."""

    def __init__(self, config: Config) -> None:
        self.topics = {"event": config.topics.events, "label": config.topics.labels}
        # Idempotent, so a retried batch cannot overtake the next: the order within a
        # partition decides which events are late.
        self.producer = KafkaProducer(
            **kafka_python_options(config), acks="all", linger_ms=5, enable_idempotence=True,
            max_request_size=4 * 1024 * 1024,
        )

    def write(self, rec: SimRecord) -> None:
        self.producer.send(self.topics[rec.kind], key=rec.key.encode(), value=rec.value)

    def __enter__(self) -> KafkaSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.producer.flush(timeout=60)
        self.producer.close(timeout=10)


class FileSink:
    """Writes ``events.jsonl`` and ``labels.jsonl`` under a directory, one record a line."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.files: dict[str, IO[bytes]] = {}

    def write(self, rec: SimRecord) -> None:
        f = self.files[rec.kind]
        f.write(rec.value.replace(b"\n", b" ") + b"\n")

    def __enter__(self) -> FileSink:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.files = {"event": open(self.out_dir / "events.jsonl", "wb"),
                      "label": open(self.out_dir / "labels.jsonl", "wb")}
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for f in self.files.values():
            f.close()
