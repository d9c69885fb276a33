"""Live: real broker, scorer, learner, Prometheus and Alertmanager; alerts fire on cue and
are delivered.

The simulator's stream has three parts. On the first, the scorer takes its drift
reference (the first events: the learner's records carry none yet) and the learner cuts a
version, which a person promotes. The second part is the same population: through
Prometheus' HTTP API the test checks that the drift and disparity alerts stayed quiet the
whole time — with drift verdicts given (the test statistics are numbers, not NaN) and
parity computed. On the third, every numeric
attribute drifts and group B is made to look riskier than its true outcomes say: the
drift alerts keyed on the drift tests' verdicts (``FeatureDriftDetected``, on
``streambed_feature_drift_detected``) and the disparity alert fire. The rules are the
shipped ones with every ``for:`` shortened to one second.

Prometheus sends its alerts to a real Alertmanager running the shipped
deploy/alertmanager/alertmanager.yml (timers shortened, webhooks pointed at a receiver in
this test): the drifting features arrive grouped in one notification on the warning route,
with the runbook, and a resolved notification follows once the traffic stops (a window
with too few events gets no verdict, and the gauge returns to 0).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import urllib.request
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

#: Events: the first part teaches the learner its first cut, the second is the same
#: population judged against that cut's reference, the third drifts.
TAUGHT, SAME, COUNT = 700, 3600, 7000
#: Paced like a live source, so labels are learned as they come and the scorer's disjoint
#: drift windows (WINDOW_SECONDS) each see a few hundred events.
RECORDS_PER_SECOND = 800
WINDOW_SECONDS = 2
WATCHED_FEATURES = ["amount_last", "income_last", "credit_score_last"]
WATCHED = ("FeatureDriftDetected", "PredictionDriftDetected", "GroupImpactDisparity")
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


@pytest.fixture
def alertmanager_bin() -> str:
    exe = alertmanager_exe()
    if exe is None:
        pytest.fail("alertmanager not found: `make test` installs Debian's "
                    "'prometheus-alertmanager' package", pytrace=False)
    return exe


def _drift_notification(status: str, features: set[str]) -> Any:
    """Matches a FeatureDriftDetected notification of ``status`` naming at least
    ``features``."""
    def match(path: str, body: dict[str, Any]) -> bool:
        named = {a["labels"].get("feature") for a in body["alerts"]}
        return (body["groupLabels"].get("alertname") == "FeatureDriftDetected"
                and body["status"] == status and features <= named)
    return match


def _short_windows(config_path: Path) -> None:
    """Monitor windows of seconds of wall-clock time, so the test sees change quickly.

    Drift: disjoint 2-second windows, a verdict from 50 events once one pair of windows
    gives the dispersion, against the first 500 events (the champion's reference once the
    learner's records carry one). The watched features are the per-event ones (a windowed
    sum or maximum warms up over hours of event time, which a reference taken this early
    would call drift). The false-alarm rate is 1e-4 per statistic and window, so the
    quiet part (at most a dozen judged windows of the features and the score) flags
    nothing with probability above 0.998; the drift (every numeric attribute times 1.6)
    is flagged far beyond that level."""
    raw = yaml.safe_load(config_path.read_text())
    raw["monitors"]["refresh_seconds"] = 0.5
    raw["monitors"]["drift"].update(
        features=WATCHED_FEATURES, window_seconds=WINDOW_SECONDS, window_buckets=1,
        min_window_events=50, min_dispersion_pairs=1, false_alarm_rate=1e-4,
        reference={"events": 500, "warmup_events": 0})
    raw["monitors"]["impact"].update(window_seconds=4, window_buckets=4)
    # A version is cut from the first part's labels; a person promotes it before the
    # drift (_promote_first_cut): then the monitors, not the gates, must catch what its
    # served decisions do.
    raw["model"]["promotion"] = {"examples_per_version": 500}
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
         "--reason", "serve a trained model before the drift", "--override",
         "--config", str(config_path)], capture_output=True, text=True, cwd=REPO,
        timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return version


def _monitoring(worker: Worker) -> dict[str, Any]:
    url = f"http://127.0.0.1:{worker.web_port}/monitoring"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return dict(json.loads(resp.read()))


def _in_background(target: Any, *args: Any, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def _produce_events(bootstrap: str, config: Any, records: list, start: int, stop: int,
                    per_second: float = RECORDS_PER_SECOND) -> None:
    """Produce, paced, the events numbered ``start + 1`` to ``stop`` and the labels that
    follow them in stream order (up to the next event)."""
    topics = {"event": config.topics.events, "label": config.topics.labels}
    batch, events = [], 0
    for rec in records:
        events += rec.kind == "event"
        if events > stop:
            break
        if events > start:
            batch.append((topics[rec.kind], rec.key, rec.value))
    produce_to(bootstrap, batch, per_second=per_second)


def test_drift_and_disparity_alerts_stay_quiet_then_fire_on_drift_and_are_delivered(
    kafka_bootstrap: str, topic_config: Path, prometheus_bin: str, alertmanager_bin: str,
    tmp_path: Path,
) -> None:
    _short_windows(topic_config)
    config = load_config(topic_config)
    ensure_topics(config)
    opts = SimulationOptions(count=COUNT, seed=42, entities=300, drift_at=SAME / COUNT,
                             disparity_at=SAME / COUNT, mean_gap_ms=20_000,
                             label_delay_ms=600_000)
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
            _produce_events(kafka_bootstrap, config, records, 0, TAUGHT)
            promoted = _promote_first_cut(topic_config, config)
            wait_until(lambda: worker.metric("streambed_model_info", model_version=promoted,
                                             feature_set=config.features.identity) == 1.0,
                       60, "the promoted version to serve")
            mark("promoted")

            # The same population, judged against the reference while it flows (a window
            # with too few events gets no verdict: the statistics are NaN once it stops).
            judged_from = time.time()
            same = _in_background(_produce_events, kafka_bootstrap, config, records,
                                  TAUGHT, SAME, per_second=RECORDS_PER_SECOND / 2)

            judged: set[str] = set()

            def all_judged() -> bool:  # each watched statistic was a number at some scrape
                values = {f: worker.metric("streambed_feature_drift_statistic", feature=f)
                          for f in WATCHED_FEATURES}
                values["parity"] = worker.metric("streambed_demographic_parity_ratio",
                                                 attribute="group")
                # NaN: no verdict (or parity) yet; 0.0: not exported yet
                judged.update(k for k, v in values.items() if v == v and v != 0.0)
                return judged >= {*WATCHED_FEATURES, "parity"}

            wait_until(all_judged, 60, "drift verdicts and parity on the scorer", step=0.2)
            seen_at = time.time()
            wait_until(lambda: prom.evaluated_after("streambed.alerts", seen_at), 10,
                       "the alert rules to be evaluated on the statistics", step=0.2)
            now_active = {(name, label) for name, label, _ in prom.alerts() if name in WATCHED}
            assert now_active == set(), f"alerts on the same population: {now_active}"
            same.join(timeout=120)
            assert not same.is_alive(), "the second part was not produced in 120 s"
            mark("same population quiet")
            # Drift quiet the whole time, not only now: ALERTS holds every pending or
            # firing alert Prometheus evaluated since the second part began. (Parity over
            # a 4-second window is noisy while the window fills: judged now, full.)
            span = math.ceil(time.time() - judged_from) + 1
            drift_alerts = "FeatureDriftDetected|PredictionDriftDetected"
            before = prom.query(
                f'max_over_time(ALERTS{{alertname=~"{drift_alerts}"}}[{span}s])')
            assert before == [], (
                f"alerts on the same population: {before}; drift statistics: "
                f"{prom.query('streambed_feature_drift_statistic')}; thresholds: "
                f"{prom.query('streambed_feature_drift_threshold')}; selection rates: "
                f"{prom.query('streambed_group_selection_rate_ratio')}")
            assert prom.query('up{job="streambed"}')[0][1] == 1.0

            # Slower, so the drift lasts several windows: the alert fires and stays firing
            # until Alertmanager has notified.
            drift = _in_background(_produce_events, kafka_bootstrap, config, records, SAME,
                                   COUNT, per_second=RECORDS_PER_SECOND / 2)

            def firing() -> set[tuple[str, str]]:
                return {(n, label) for n, label, state in prom.alerts() if state == "firing"}

            fired: set[tuple[str, str]] = set()

            def drift_and_disparity() -> bool:  # firing at some time, not all at once
                fired.update(firing())
                return {("GroupImpactDisparity", "group"), ("FeatureDriftDetected",
                        "amount_last"), ("FeatureDriftDetected", "credit_score_last")} <= fired

            try:
                wait_until(drift_and_disparity, 60, "drift and disparity alerts to fire",
                           step=0.2)
            except AssertionError as exc:
                raise AssertionError(
                    f"{exc}; fired: {sorted(fired)}; now: {prom.alerts()}; detected: "
                    f"{prom.query('streambed_feature_drift_detected')}; statistics: "
                    f"{prom.query('streambed_feature_drift_statistic')}; thresholds: "
                    f"{prom.query('streambed_feature_drift_threshold')}; parity: "
                    f"{prom.query('streambed_demographic_parity_ratio')}; monitoring: "
                    f"{_monitoring(worker)['feature_drift']}") from None
            mark("firing")
            drift.join(timeout=120)
            assert not drift.is_alive(), "the third part was not produced in 120 s"
            drifted = {label for name, label in fired if name == "FeatureDriftDetected"}
            assert "WorkerDown" not in {n for n, _ in firing()}

            # Delivered: one notification for the drifting features, on the warning
            # route, with the runbook and links; grouped by alert name, not by feature.
            path, note = receiver.wait_for(
                _drift_notification("firing", {"amount_last", "credit_score_last"}), 30,
                "the grouped FeatureDriftDetected notification")
            mark("notified")
            assert path == "/warning"
            assert note["groupLabels"] == {"alertname": "FeatureDriftDetected",
                                           "job": "streambed"}
            assert len(note["alerts"]) >= 2
            for alert in note["alerts"]:
                notes = alert["annotations"]
                assert notes["runbook"].startswith(
                    "docs/operations.md#featuredriftdetected - 1.")
                assert notes["runbook_url"] == "docs/operations.md#featuredriftdetected"
                assert notes["dashboard_url"].startswith("/d/streambed/")
            drift_notes = [b for _, b in receiver.notifications
                           if b["groupLabels"].get("alertname") == "FeatureDriftDetected"]
            assert all("feature" not in b["groupLabels"] for b in drift_notes)

            # Resolved: traffic has stopped, so the next windows get no verdict, the
            # gauges return to 0 and Alertmanager says so.
            _, resolved = receiver.wait_for(
                _drift_notification("resolved", {"amount_last", "credit_score_last"}), 45,
                "the resolved FeatureDriftDetected notification")
            mark("resolved")
            assert all(a["status"] == "resolved" for a in resolved["alerts"])
            assert "docs/operations.md#featuredriftdetected" in resolved[
                "commonAnnotations"].get("runbook_url", "")
            assert not [b for p, b in receiver.notifications if p == "/critical"], (
                "nothing critical happened")
            delivered = [(p, b["status"], b["groupLabels"]["alertname"], len(b["alerts"]))
                         for p, b in receiver.notifications]
            print(f"fired after the drift: {sorted(fired)} (drifted: {sorted(drifted)}); "
                  f"notifications: {delivered}; seconds: {phases}")
    finally:
        learner.stop()
        worker.stop()
