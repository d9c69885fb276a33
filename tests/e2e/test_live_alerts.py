"""Live: real broker, worker, Prometheus and Alertmanager; alerts fire on cue and are delivered.

The simulator's stream turns bad halfway (every numeric attribute drifts, and group B is
made to look riskier than its true outcomes say). Through Prometheus' HTTP API the test
checks that the drift and disparity alerts were quiet — with the statistics computed, not
NaN — while the first half was scored, and firing after the second half. The rules are
the shipped ones with every ``for:`` shortened to one second.

Prometheus sends its alerts to a real Alertmanager running the shipped
deploy/alertmanager/alertmanager.yml (timers shortened, webhooks pointed at a receiver in
this test): the drifting features arrive grouped in one notification on the warning route,
with the runbook, and a resolved notification follows once the traffic stops and the
drift window empties.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitors.alert_rules import rules_with_for
from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.topics import ensure_topics, read_all
from tests.alerting import Alertmanager, WebhookReceiver, alertmanager_exe, short_timer_config
from tests.support import REPO, Prometheus, Worker, free_port, produce_to, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.prometheus]

COUNT = 4000
#: Paced like a live source, so labels are learned as they come, not after a burst.
RECORDS_PER_SECOND = 800
WATCHED = ("FeatureDriftHigh", "PredictionDriftHigh", "GroupImpactDisparity")
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


@pytest.fixture
def alertmanager_bin() -> str:
    exe = alertmanager_exe()
    if exe is None:
        pytest.fail("alertmanager not found: `make test` installs Debian's "
                    "'prometheus-alertmanager' package", pytrace=False)
    return exe


def _drift_notification(status: str, features: set[str]) -> Any:
    """Matches a FeatureDriftHigh notification of ``status`` naming at least ``features``."""
    def match(path: str, body: dict[str, Any]) -> bool:
        named = {a["labels"].get("feature") for a in body["alerts"]}
        return (body["groupLabels"].get("alertname") == "FeatureDriftHigh"
                and body["status"] == status and features <= named)
    return match


def _short_windows(config_path: Path) -> None:
    """Monitor windows of 20 s of wall-clock time, so the test sees change quickly."""
    raw = yaml.safe_load(config_path.read_text())
    raw["monitors"]["refresh_seconds"] = 1
    raw["monitors"]["drift"].update(window_seconds=20, window_buckets=20)
    raw["monitors"]["impact"].update(window_seconds=20, window_buckets=20)
    # A version is cut from the first half's labels; a person promotes it before the
    # injection (_promote_first_cut): then the monitors, not the gates, must catch what
    # its served decisions do.
    raw["model"]["promotion"] = {"examples_per_version": 1500}
    config_path.write_text(yaml.safe_dump(raw))


def _promote_first_cut(config_path: Path, config: Any) -> str:
    """Wait for the learner's first cut (in shadow: the gates would judge it on shadow
    evidence this short run does not gather) and promote it as a person, on the record."""
    def first() -> str | None:
        for _, _, value, _ in read_all(config, config.topics.model_versions):
            record = json.loads(value)
            if record["sequence"] == 1:
                return str(record["version"])
        return None

    wait_until(lambda: first() is not None, 90, "the learner's first cut")
    version = first() or ""
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "model", "promote", version, "--by", "test",
         "--reason", "serve a trained model before the injection", "--override",
         "--config", str(config_path)], capture_output=True, text=True, cwd=REPO,
        timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return version


def _produce_until_event(bootstrap: str, config, records: list, stop_at: int) -> int:
    """Produce records (events and labels, in stream order) up to event number ``stop_at``."""
    topics = {"event": config.topics.events, "label": config.topics.labels}
    batch, events = [], 0
    for rec in records:
        if rec.kind == "event":
            if events == stop_at:
                break
            events += 1
        batch.append((topics[rec.kind], rec.key, rec.value))
    produce_to(bootstrap, batch, per_second=RECORDS_PER_SECOND)
    return len(batch)


def test_drift_and_disparity_alerts_are_quiet_before_injection_fire_after_and_are_delivered(
    kafka_bootstrap: str, topic_config: Path, prometheus_bin: str, alertmanager_bin: str,
    tmp_path: Path,
) -> None:
    _short_windows(topic_config)
    config = load_config(topic_config)
    ensure_topics(config)
    opts = SimulationOptions(count=COUNT, seed=42, entities=300, drift_at=0.5,
                             disparity_at=0.5, mean_gap_ms=20_000, label_delay_ms=600_000)
    records = list(Simulator(config, opts).records())

    began = time.monotonic()
    phases: dict[str, float] = {}

    def mark(phase: str) -> None:
        phases[phase] = round(time.monotonic() - began, 1)

    worker = Worker(topic_config, free_port(), tmp_path / "worker")
    worker.start()
    learner = Worker(topic_config, free_port(), tmp_path / "learner", role="learner")
    learner.start()
    mark("worker up")
    try:
        with WebhookReceiver() as receiver, \
             Alertmanager(alertmanager_bin, tmp_path / "alertmanager",
                          short_timer_config(ALERTMANAGER_CONFIG, receiver.url)) as am, \
             Prometheus(prometheus_bin, tmp_path / "prometheus",
                        [f"127.0.0.1:{worker.web_port}"], rules_with_for(1),
                        alertmanager=f"127.0.0.1:{am.port}") as prom:
            taken = _produce_until_event(kafka_bootstrap, config, records, COUNT // 2)
            wait_until(lambda: worker.metric("streambed_events_total", outcome="scored")
                       == COUNT // 2, 90, "the first half to be scored")

            def computed() -> bool:  # every watched statistic is a number in Prometheus
                psi = prom.query("streambed_feature_drift_psi")
                parity = prom.query('streambed_demographic_parity_ratio{attribute="group"}')
                return (len(psi) == len(config.monitors.drift.features or [])
                        and all(not math.isnan(v) for _, v in psi)
                        and bool(parity) and not math.isnan(parity[0][1]))

            wait_until(computed, 30, "drift and parity statistics in Prometheus")
            # Anything due is pending once the rules were evaluated on these statistics.
            seen_at = time.time()
            wait_until(lambda: prom.evaluated_after("streambed.alerts", seen_at), 10,
                       "the alert rules to be evaluated on the statistics", step=0.2)
            mark("first half quiet")
            before = {(name, label) for name, label, _ in prom.alerts() if name in WATCHED}
            assert before == set(), (
                f"alerts before the injection: {before}; selection rates: "
                f"{prom.query('streambed_group_selection_rate_ratio')}; window decisions: "
                f"{prom.query('streambed_group_window_decisions')}; labels: "
                f"{prom.query('streambed_labels_total')} {prom.query('streambed_labels_waiting')}")
            assert prom.query('up{job="streambed"}')[0][1] == 1.0
            promoted = _promote_first_cut(topic_config, config)
            wait_until(lambda: worker.metric("streambed_model_info", model_version=promoted,
                                             feature_set=config.features.identity) == 1.0,
                       60, "the promoted version to serve")

            rest = records[taken:]
            _produce_until_event(kafka_bootstrap, config, rest, COUNT)
            wait_until(lambda: worker.metric("streambed_events_total", outcome="scored")
                       == COUNT, 90, "the second half to be scored")

            def firing() -> set[tuple[str, str]]:
                return {(n, label) for n, label, state in prom.alerts() if state == "firing"}

            wait_until(lambda: {"FeatureDriftHigh", "GroupImpactDisparity"}
                       <= {n for n, _ in firing()}, 60, "drift and disparity alerts to fire")
            after = firing()
            mark("firing")
            assert ("GroupImpactDisparity", "group") in after
            drifted = {label for name, label in after if name == "FeatureDriftHigh"}
            assert {"amount_last", "credit_score_last"} <= drifted, after
            assert "WorkerDown" not in {n for n, _ in after}

            # Delivered: one notification for all the drifting features, on the warning
            # route, with the runbook and links; grouped by alert name, not by feature.
            path, note = receiver.wait_for(_drift_notification("firing", drifted), 30,
                                           "the grouped FeatureDriftHigh notification")
            mark("notified")
            assert path == "/warning"
            assert note["groupLabels"] == {"alertname": "FeatureDriftHigh", "job": "streambed"}
            assert len(note["alerts"]) >= len(drifted) >= 2
            for alert in note["alerts"]:
                notes = alert["annotations"]
                assert notes["runbook"].startswith("docs/operations.md#featuredrifthigh - 1.")
                assert notes["runbook_url"] == "docs/operations.md#featuredrifthigh"
                assert notes["dashboard_url"].startswith("/d/streambed/")
            drift_notes = [b for _, b in receiver.notifications
                           if b["groupLabels"].get("alertname") == "FeatureDriftHigh"]
            assert all("feature" not in b["groupLabels"] for b in drift_notes)

            # Resolved: traffic has stopped, so the 20 s drift window empties, the PSI is
            # NaN again (not enough data) and Alertmanager says so.
            _, resolved = receiver.wait_for(_drift_notification("resolved", drifted), 45,
                                            "the resolved FeatureDriftHigh notification")
            mark("resolved")
            assert all(a["status"] == "resolved" for a in resolved["alerts"])
            assert "docs/operations.md#featuredrifthigh" in resolved["commonAnnotations"].get(
                "runbook_url", "")
            assert not [b for p, b in receiver.notifications if p == "/critical"], (
                "nothing critical happened")
            delivered = [(p, b["status"], b["groupLabels"]["alertname"], len(b["alerts"]))
                         for p, b in receiver.notifications]
            print(f"alerts before injection: {sorted(before)}; after: {sorted(after)}; "
                  f"notifications: {delivered}; seconds: {phases}")
    finally:
        learner.stop()
        worker.stop()
