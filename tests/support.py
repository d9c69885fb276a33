"""Test helpers that talk to real processes: a worker subprocess, topic reads, /metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Worker:
    """``streambed worker`` as a child process with its own data directory and log."""

    def __init__(self, config: Path, web_port: int, data_dir: Path) -> None:
        self.config, self.web_port, self.data_dir = config, web_port, data_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.with_suffix(".log")

    def start(self, ready_timeout_seconds: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--config", str(self.config),
             "--web-port", str(self.web_port), "--data-dir", str(self.data_dir)],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        )
        deadline = time.monotonic() + ready_timeout_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            try:
                self.metrics_text()
                return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"worker /metrics not up in {ready_timeout_seconds}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample (0.0 when the series is absent)."""
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return sample.value
        return 0.0

    def stop(self, timeout_seconds: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             max_request_size=4 * 1024 * 1024)
    for key, value in records:
        producer.send(topic, key=key.encode(), value=value)
    producer.flush(timeout=60)
    producer.close()


def read_topic(bootstrap: str, topic: str, expected: int,
               timeout_seconds: float = 90.0) -> list[Any]:
    """Read a topic from the start until ``expected`` records arrived or time runs out."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    out: list[Any] = []
    deadline = time.monotonic() + timeout_seconds
    try:
        while time.monotonic() < deadline and consumer.partitions_for_topic(topic) is None:
            time.sleep(0.2)
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        while len(out) < expected and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(recs)
        # Anything beyond `expected` would be a bug (a duplicate): look a little longer.
        for recs in consumer.poll(timeout_ms=1000).values():
            out.extend(recs)
    finally:
        consumer.close()
    return out


def json_values(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


def wait_until(predicate: Any, timeout_seconds: float, what: str, step: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout_seconds}s waiting for {what}")
