"""A real Prometheus scrapes what Monitoring exports and fires (and holds) the right alerts.

The rules are the shipped ones with every ``for:`` shortened by ``rules_with_for``, so the
test checks names, labels and thresholds end to end, not just promtool's fixtures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from monitors import Metrics, Monitoring, MonitorsConfig
from monitors.alert_rules import rules_with_for
from tests.support import Prometheus, free_port, wait_until

pytestmark = pytest.mark.prometheus


def drifted_worker() -> CollectorRegistry:
    """A Monitoring whose amount feature, score and group decisions have all shifted: the
    first 200 events are the reference, 4 stationary 10-second windows give the drift
    test its dispersion, the last 3 windows are shifted, and the refresh judges the last."""
    registry = CollectorRegistry()
    config = MonitorsConfig.model_validate({
        "sensitive_attributes": {"group": ["A", "B"]},
        "drift": {"reference": {"events": 200}, "min_window_events": 50,
                  "window_seconds": 10, "window_buckets": 2},
        "impact": {"min_group_size": 30},
    })
    m = Monitoring(config, ["amount", "steady"], Metrics(registry))
    rng = np.random.default_rng(0)
    now = 1_000.0
    for i in range(900):
        shift = 0.0 if i < 600 else 2.0
        amount = float(rng.normal(loc=shift))
        group = "AB"[i % 2]
        score = float(1 / (1 + np.exp(-amount))) * (0.2 if group == "B" and i >= 600 else 1)
        m.on_scored(features={"amount": amount, "steady": float(rng.integers(7))},
                    score=score, decision=int(score >= 0.5), groups={"group": group},
                    model_version="v1", now=now)
        now += 0.1
    m.refresh(now)
    return registry


@pytest.fixture
def prometheus(tmp_path: Path, prometheus_bin: str) -> Iterator[Prometheus]:
    registry = drifted_worker()
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    try:
        with Prometheus(prometheus_bin, tmp_path, [f"127.0.0.1:{exporter_port}"],
                        rules_with_for(1)) as prom:
            yield prom
    finally:
        server.shutdown()
        thread.join(timeout=5)


def firing(prom: Prometheus) -> set[tuple[str, str]]:
    return {(name, label) for name, label, state in prom.alerts() if state == "firing"}


def test_real_prometheus_fires_drift_and_impact_alerts_and_nothing_else(
    prometheus: Prometheus,
) -> None:
    expected = {("FeatureDriftDetected", "amount"), ("PredictionDriftDetected", ""),
                ("GroupImpactDisparity", "group")}
    seen: set[tuple[str, str]] = set()

    def all_fire() -> bool:
        nonlocal seen
        seen = firing(prometheus)
        return expected <= seen

    wait_until(all_fire, 40, f"{sorted(expected)} to fire")
    # Anything else these series trip would be pending or firing within a few evaluations
    # (every second, each ``for:`` shortened to 1 s): watch them all, pending included.
    # Only one exporter runs here: the alerts about the parts that do not (no learner, no
    # events flowing) are about this setup, not about the data.
    not_running = {("LearnerDown", ""), ("EventsStale", "")}
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        active = {(name, label) for name, label, _ in prometheus.alerts()} - not_running
        assert active == expected, f"unexpected alerts: {sorted(active - expected)}"
        time.sleep(0.5)
