"""The local broker runner: clear errors without Java/Maven, ids argparse cannot misread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.devtools.kafka_local import BrokerOptions, _server_properties, port_in_use
from tests.support import REPO, free_port


def test_missing_java_and_maven_are_named_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "STREAMBED_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "kafka", "start", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "k")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "java and mvn not found" in proc.stderr and "install" in proc.stderr


def test_server_properties_are_loopback_only_and_single_node(tmp_path: Path) -> None:
    props = _server_properties(BrokerOptions(port=29999, data_dir=tmp_path), tmp_path / "log")
    assert "listeners=PLAINTEXT://127.0.0.1:29999,CONTROLLER://127.0.0.1:30999" in props
    assert "controller.quorum.voters=1@127.0.0.1:30999" in props
    assert "offsets.topic.replication.factor=1" in props
    assert "0.0.0.0" not in props


def test_the_controller_port_defaults_to_port_plus_1000_and_is_configurable(
    tmp_path: Path,
) -> None:
    assert BrokerOptions(port=29999).controller_port == 30999
    opts = BrokerOptions(port=29999, controller_port=31555, data_dir=tmp_path)
    props = _server_properties(opts, tmp_path / "log")
    assert "listeners=PLAINTEXT://127.0.0.1:29999,CONTROLLER://127.0.0.1:31555" in props
    assert "controller.quorum.voters=1@127.0.0.1:31555" in props
    with pytest.raises(ValueError, match="must differ"):
        BrokerOptions(port=29999, controller_port=29999)
    with pytest.raises(ValueError, match="give --controller-port"):
        BrokerOptions(port=65000)
    assert BrokerOptions(port=65000, controller_port=64000).controller_port == 64000


def _start(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STREAMBED_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "kafka", "start", *args,
         "--data-dir", str(tmp_path / "k")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )


@contextmanager
def listening(port: int) -> Iterator[None]:
    """Something else holds ``port`` (a listening socket, as another server would)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield


def _port_pair() -> tuple[int, int]:
    for _ in range(50):
        port = free_port()
        if port + 1000 < 65536 and not port_in_use(port + 1000):
            return port, port + 1000
    raise RuntimeError("no free port pair")


def test_a_taken_default_controller_port_is_named_in_one_line(tmp_path: Path) -> None:
    port, controller = _port_pair()
    with listening(controller):
        proc = _start(tmp_path, "--port", str(port))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"controller port {controller}" in proc.stderr and "--controller-port" in proc.stderr
    assert "Exception" not in proc.stderr + proc.stdout
    assert not (tmp_path / "k" / "broker.pid").exists(), "no broker process was started"


def test_a_taken_explicit_controller_port_is_named_in_one_line(tmp_path: Path) -> None:
    port, controller = free_port(), free_port()
    with listening(controller):
        proc = _start(tmp_path, "--port", str(port), "--controller-port", str(controller))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"controller port {controller}" in proc.stderr


def test_a_taken_client_port_is_named_in_one_line(tmp_path: Path) -> None:
    port, _ = _port_pair()
    with listening(port):
        proc = _start(tmp_path, "--port", str(port))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"client port {port}" in proc.stderr and "--port" in proc.stderr


def test_port_in_use_sees_listeners_only() -> None:
    port = free_port()
    assert not port_in_use(port)
    with listening(port):
        assert port_in_use(port)
    assert not port_in_use(port)
