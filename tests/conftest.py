"""Shared fixtures: a real Kafka broker for the session (one for all of xdist's processes),
workers as real processes, Hypothesis profiles; and how the suite is spread over xdist's
processes.

Nothing here skips: if Java, Maven, Kafka or Prometheus cannot be had, the fixture fails
and says what is missing (``make test`` installs all of them).

Distribution (``-n 4 --dist loadfile``, pyproject.toml) with two refinements, made by
:func:`pytest_xdist_make_scheduler`: the files in :data:`PER_TEST` (long end-to-end tests
that share nothing but the session's broker) hand out each test on its own, so their
tests run side by side; and work is handed out longest first (:data:`LONGEST_FIRST`), so
the run does not end with one process busy on a long test while the other idles. Every
other file stays whole on one process (some share a module-scoped fixture).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from streams.devtools.kafka_local import BrokerError, BrokerOptions, start, stop
from tests.support import (
    HYPOTHESIS_PROFILES,
    Worker,
    free_port,
    fresh_config,
    port_is_free,
    stop_all,
)

for _name, (_settings, _) in HYPOTHESIS_PROFILES.items():
    settings.register_profile(_name, **_settings)
if os.environ.get("HYPOTHESIS_PROFILE") in HYPOTHESIS_PROFILES:
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])

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


#: Test files by how long their tests run (longest first, measured with ``--durations``):
#: handed out before everything else. A file not listed runs after them, in collection
#: order; list a new file here if one of its tests takes more than about 30 s. (Measured
#: in CPU s, one process, shared machine: the backtest files 105 for 17 tests since they
#: call the command line in process, test_experiments.py's export test 23 of them; the
#: parity properties about 17 and 5 under the "ci" profile, 30 s or more of wall time
#: beside three other processes, which is why they go before the short files.)
LONGEST_FIRST = (
    "tests/e2e/test_state_on_disk.py",
    "tests/e2e/test_lifecycle.py",
    "tests/chaos/test_chaos.py",
    "tests/chaos/test_crash_before_ack.py",
    "tests/e2e/test_drift_reference.py",
    "tests/e2e/test_drift_pause.py",
    "tests/e2e/test_live_alerts.py",
    "tests/e2e/test_outage.py",
    "tests/e2e/test_slice.py",
    "tests/e2e/test_parity.py",
    "tests/chaos/test_recreated_changelog.py",
    "tests/backtest/",
    "tests/features/test_features_parity.py",
    "tests/streams/test_replay_dask.py",
    "tests/e2e/",
    "tests/chaos/",
)
#: Files whose tests are handed out one by one (each makes its own topics and workers).
PER_TEST = frozenset({
    "tests/e2e/test_state_on_disk.py",
    "tests/e2e/test_lifecycle.py",
    "tests/e2e/test_slice.py",
    "tests/e2e/test_startup.py",
    "tests/chaos/test_crash_before_ack.py",
})


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return next((i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)),
                len(LONGEST_FIRST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (a stable sort: the rest keeps collection order). xdist hands
    out its units of work in this order (``--no-loadscope-reorder``)."""
    items.sort(key=_rank)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, except that the tests of :data:`PER_TEST` files are units of
    their own. (xdist's ``loadgroup`` marks cannot do this under pytest 9: xdist 3.8
    renames ``item._nodeid``, which pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileOrTest(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path in PER_TEST else path

    return FileOrTest(config, log)


#: Under xdist, the one broker the run's processes share: its options, written by the
#: process that started it, in the directory above every process's own temporary directory.
SHARED_BROKER = "kafka-broker.json"


def _start_broker(data_dir: Path) -> BrokerOptions:
    opts = BrokerOptions(port=TEST_BROKER_PORT or free_broker_port(), data_dir=data_dir)
    try:
        start(opts, log=lambda line: print(line, flush=True))
    except BrokerError as exc:
        pytest.fail(f"the test Kafka broker could not start: {exc}", pytrace=False)
    return opts


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Apache Kafka broker (KRaft) on loopback for the whole test session.

    Under xdist the run's processes share one broker (every test makes topics and a
    consumer group unique to it, tests/support.py ``fresh_config``): the first process
    that needs it starts it, the others find it in :data:`SHARED_BROKER`, and the
    controller stops it when the run ends (:func:`pytest_sessionfinish`). Measured: a
    broker costs about 6.5 CPU s to format and start and 2.5 CPU s a minute idle, and
    512 MB of heap; four of them (one a process) spent about 75 CPU s more per run."""
    if not hasattr(request.config, "workerinput"):
        opts = _start_broker(tmp_path_factory.mktemp("kafka"))
        yield opts.bootstrap
        stop(opts, log=lambda line: print(line, flush=True))
        return
    shared = tmp_path_factory.getbasetemp().parent
    with open(shared / "kafka-broker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        state = shared / SHARED_BROKER
        if state.exists():
            known = json.loads(state.read_text())
            opts = BrokerOptions(port=known["port"], data_dir=Path(known["data_dir"]))
        else:
            opts = _start_broker(shared / "kafka")
            state.write_text(json.dumps({"port": opts.port, "data_dir": str(opts.data_dir)}))
    yield opts.bootstrap


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The xdist controller stops the broker its processes shared, once they all ended."""
    if hasattr(session.config, "workerinput"):
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    state = factory.getbasetemp() / SHARED_BROKER if factory is not None else None
    if state is not None and state.exists():
        known = json.loads(state.read_text())
        stop(BrokerOptions(port=known["port"], data_dir=Path(known["data_dir"])),
             log=lambda line: print(line, flush=True))


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
    stop_all(started)
