"""The local broker's life cycle: start, idempotent start, crash, recovery, stop."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from streams.devtools.kafka_local import BrokerOptions, broker_ready, start, status, stop
from tests.support import free_port, wait_until

pytestmark = pytest.mark.kafka


def test_start_twice_then_crash_then_start_again_recovers(tmp_path: Path) -> None:
    lines: list[str] = []
    opts = BrokerOptions(port=free_port(), data_dir=tmp_path / "kafka")
    try:
        first = start(opts, log=lines.append)
        assert first.reachable and first.pid
        again = start(opts, log=lines.append)
        assert again.pid == first.pid and "already running" in lines[-1]

        os.kill(first.pid, signal.SIGKILL)
        wait_until(lambda: not status(opts).running, 20, "the killed broker to be gone")
        recovered = start(opts, log=lines.append)
        assert recovered.pid != first.pid and broker_ready(opts.bootstrap)
    finally:
        stop(opts, log=lines.append)
    assert not status(opts).running and "stopped" in lines[-1]
