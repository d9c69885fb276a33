"""Shared fixtures: a real Kafka broker for the session, workers as real processes.

Nothing here skips: if Java, Maven, Kafka or Prometheus cannot be had, the fixture fails
and says what is missing (``make test`` installs all of them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.devtools.kafka_local import BrokerError, BrokerOptions, start, stop
from tests.support import Worker, free_port, fresh_config, port_is_free

#: A fixed port only when asked for; otherwise a free one, so other brokers on this machine
#: (and the controller port, broker port + 1000) never collide with the test broker.
TEST_BROKER_PORT = int(os.environ.get("STREAMBED_TEST_KAFKA_PORT", "0"))


def free_broker_port() -> int:
    """A free port whose controller port (port + 1000) is free too."""
    for _ in range(50):
        port = free_port()
        if port + 1000 < 65536 and port_is_free(port + 1000):
            return port
    raise RuntimeError("no free port pair for the test broker")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Apache Kafka broker (KRaft) on loopback for the whole test session."""
    opts = BrokerOptions(
        port=TEST_BROKER_PORT or free_broker_port(), data_dir=tmp_path_factory.mktemp("kafka")
    )
    try:
        start(opts, log=lambda line: print(line, flush=True))
    except BrokerError as exc:
        pytest.fail(f"the test Kafka broker could not start: {exc}", pytrace=False)
    yield opts.bootstrap
    stop(opts, log=lambda line: print(line, flush=True))


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of Debian's prometheus binary; fails (never skips) when it is missing."""
    path = shutil.which("prometheus")
    if path is None or shutil.which("promtool") is None:
        pytest.fail(
            "prometheus/promtool not found: `make test` installs Debian's "
            "'prometheus' package (apt-get install prometheus)",
            pytrace=False,
        )
    return path


@pytest.fixture
def topic_config(kafka_bootstrap: str, tmp_path: Path) -> Path:
    """The quickstart config pointed at the test broker, with topics unique to this test."""
    return fresh_config(tmp_path, kafka_bootstrap)


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator:
    """Start ``streambed worker`` processes; all are stopped when the test ends."""
    started: list[Worker] = []

    def make(config: Path, web_port: int, role: str = "worker") -> Worker:
        w = Worker(config, web_port, tmp_path / f"{role}-{web_port}", role)
        started.append(w)
        w.start()
        return w

    yield make
    for w in started:
        w.stop()
