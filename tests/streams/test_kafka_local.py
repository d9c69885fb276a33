"""The local broker runner: clear errors without Java/Maven, ids argparse cannot misread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.devtools.kafka_local import BrokerOptions, _server_properties
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
