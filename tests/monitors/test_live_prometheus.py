"""A real Prometheus scrapes what Monitoring exports and fires (and holds) the right alerts.

The rules are the shipped ones with every ``for:`` shortened by ``rules_with_for``, so the
test checks names, labels and thresholds end to end, not just promtool's fixtures.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from monitors import Metrics, Monitoring, MonitorsConfig
from monitors.alert_rules import rules_with_for

pytestmark = pytest.mark.prometheus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drifted_worker() -> CollectorRegistry:
    """A Monitoring whose amount feature, score and group decisions have all shifted."""
    registry = CollectorRegistry()
    config = MonitorsConfig.model_validate({
        "sensitive_attributes": {"group": ["A", "B"]},
        "drift": {"reference": {"events": 200}, "min_window_events": 50},
        "impact": {"min_group_size": 30},
    })
    m = Monitoring(config, ["amount", "steady"], Metrics(registry))
    rng = np.random.default_rng(0)
    now = 1_000.0
    for i in range(800):
        shift = 0.0 if i < 200 else 2.0
        amount = float(rng.normal(loc=shift))
        group = "AB"[i % 2]
        score = float(1 / (1 + np.exp(-amount))) * (0.2 if group == "B" and i >= 200 else 1)
        m.on_scored(features={"amount": amount, "steady": float(i % 7)}, score=score,
                    decision=int(score >= 0.5), groups={"group": group}, model_version="v1",
                    now=now)
        now += 0.1
    m.refresh(now)
    return registry


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.fail("prometheus is not installed (Debian package `prometheus`); it is required")
    registry = drifted_worker()
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    (tmp_path / "alerts.yml").write_text(rules_with_for(1))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "streambed",
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
    }))
    port = free_port()
    process = subprocess.Popen(
        [exe, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        server.shutdown()
        thread.join(timeout=5)


def firing(base: str) -> set[tuple[str, str]]:
    with urllib.request.urlopen(f"{base}/api/v1/alerts", timeout=2) as response:
        alerts = json.load(response)["data"]["alerts"]
    return {
        (a["labels"]["alertname"], a["labels"].get("feature") or a["labels"].get("attribute", ""))
        for a in alerts if a["state"] == "firing"
    }


def test_real_prometheus_fires_drift_and_impact_alerts_and_nothing_else(prometheus: str) -> None:
    expected = {("FeatureDriftHigh", "amount"), ("PredictionDriftHigh", ""),
                ("GroupImpactDisparity", "group")}
    deadline = time.monotonic() + 40
    seen: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        try:
            seen = firing(prometheus)
        except OSError:
            seen = set()  # not listening yet
        if expected <= seen:
            break
        time.sleep(0.5)
    assert expected <= seen, f"firing: {seen}"
    assert ("FeatureDriftHigh", "steady") not in seen
    assert not {name for name, _ in seen} & {"WorkerDown", "DeadLetterRateHigh",
                                              "ModelPerformanceDegraded"}
