"""Live: real broker, scorer, learner, Prometheus and Alertmanager; the drift alert keyed
on the drift tests' verdicts stays quiet on the reference's population, fires on a drift,
is delivered and resolves.

The simulator's stream has three parts. On the first, the learner cuts a version (its
record carries the drift reference: a sketch of its training examples), which a person
promotes; the scorer then compares live traffic with that reference. The second part is
the same population: it flows until the scorer has given a drift verdict on
``JUDGED_WINDOWS`` disjoint windows of every watched feature (bounded), and through
Prometheus' HTTP API the test checks that ``FeatureDriftDetected`` was never pending or
firing and ``streambed_feature_drift_detected`` never 1 over the whole part. On the third,
every numeric attribute drifts and group B is made to look riskier than its true outcomes
say: ``FeatureDriftDetected`` fires for the drifting features and ``GroupImpactDisparity``
for the group. The rules are the shipped ones with every ``for:`` shortened to one second.

Prometheus sends its alerts to a real Alertmanager running the shipped
deploy/alertmanager/alertmanager.yml (timers shortened, webhooks pointed at a receiver in
this test): the drifting features arrive grouped in one notification on the warning route,
with the runbook, and a resolved notification follows once the traffic stops (a window
with too few events gets no verdict, and the gauge returns to 0).

Cheap in wall time: each part lasts only until its condition holds (traffic is produced
in the background and stopped then), and the monitors judge disjoint 2-second windows
(``_test_monitors``), so the whole test takes about a minute.

Not claimed quiet: ``PredictionDriftDetected``. The quickstart's model scores lifetime
and day-long counts, which grow for every one of the simulator's 300 entities over the
stream's days of event time (20 s between events), so the score distribution really
moves away from the reference's (examples of the first hours) while the watched
per-event features do not: PredictionDriftDetected may fire on the second part (it did
in a run of the earlier version of this test).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from monitors.alert_rules import rules_with_for
from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.devtools.sinks import Pacer
from streams.topics import ensure_topics, read_all
from tests.alerting import Alertmanager, WebhookReceiver, alertmanager_exe, short_timer_config
from tests.support import REPO, Prometheus, Worker, free_port, produce_to, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.prometheus]
T = TypeVar("T")

#: Events of each part. The second and third parts are pools: traffic stops as soon as
#: the part's condition holds, so at the pace below they bound its length (about 45 s and
#: 25 s), they do not set it.
TAUGHT, STATIONARY_POOL, DRIFT_POOL = 700, 9000, 5000
SAME = TAUGHT + STATIONARY_POOL
COUNT = SAME + DRIFT_POOL
#: Events and labels (one label per event), paced like a live source: about 200 events a
#: second, 400 in each of the scorer's disjoint drift windows.
RECORDS_PER_SECOND = 400
WINDOW_SECONDS = 2
#: Disjoint windows judged for every watched feature before the quiet part ends.
JUDGED_WINDOWS = 3
#: Per-event features: a windowed sum or count warms up over hours of event time (and a
#: lifetime count grows for ever), which a reference taken early would call drift.
WATCHED_FEATURES = ["amount_last", "income_last", "credit_score_last"]
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


def _test_monitors(config_path: Path) -> None:
    """Monitor windows of seconds of wall-clock time, so the test sees change quickly.

    Drift: disjoint 2-second windows (about 400 events each), a verdict from 50 events
    once one pair of consecutive windows gives the dispersion (the F threshold accounts
    for so few pairs), against the promoted version's reference. The false-alarm rate is
    1e-4 per feature and window, so the quiet part (about 12 judged feature-windows: 3 or
    4 windows of 3 features) flags one with probability about 0.0012, a run in 800; the
    drift (every numeric attribute times 1.6) is flagged far beyond that level. The
    verdict gauge holds for a window (2 s), Prometheus scrapes and evaluates every second:
    no flagged window goes unseen."""
    raw = yaml.safe_load(config_path.read_text())
    raw["monitors"]["refresh_seconds"] = 0.5
    raw["monitors"]["drift"].update(
        features=WATCHED_FEATURES, window_seconds=WINDOW_SECONDS, window_buckets=1,
        min_window_events=50, min_dispersion_pairs=1, false_alarm_rate=1e-4,
        reference={"events": 500, "warmup_events": 0})
    raw["monitors"]["impact"].update(window_seconds=4, window_buckets=4)
    # The first cut (500 examples) is promoted by a person (_promote_first_cut); manual
    # mode and no shadows: no later version replaces it (a new champion would restart the
    # windows in its own reference's bins), and the scorer spends no CPU on shadows.
    raw["model"]["promotion"] = {"mode": "manual", "examples_per_version": 500,
                                 "max_shadows": 0}
    config_path.write_text(yaml.safe_dump(raw))


def _promote_first_cut(config_path: Path, config: Any) -> str:
    """Wait for the learner's first cut and promote it as a person, on the record."""
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


def _answered(read: Callable[[], T]) -> T | None:
    """``read()``, or None when the process did not answer in time: on a loaded machine a
    scorer starved of CPU can take seconds to serve a page (seen at load average 17), and
    the bounded wait that polls asks again."""
    try:
        return read()
    except OSError:  # a timeout, or a refused connection (then the wait times out)
        return None


def _asked(read: Callable[[], T], what: str, timeout_seconds: float = 30.0) -> T:
    """``read()``'s answer, asked again (bounded) while the process does not answer."""
    deadline = time.monotonic() + timeout_seconds
    while (answer := _answered(read)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer in {timeout_seconds} s: {what}")
        time.sleep(0.5)
    return answer


def _monitoring(worker: Worker) -> dict[str, Any] | None:
    """The scorer's /monitoring snapshot, or None when it did not answer in 10 s."""
    def read() -> dict[str, Any]:
        url = f"http://127.0.0.1:{worker.web_port}/monitoring"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return dict(json.loads(resp.read()))
    return _answered(read)


def _drift(worker: Worker) -> Any:
    """The feature drift part of the snapshot, for a failure's message."""
    return (_monitoring(worker) or {}).get("feature_drift", "no answer")


def _events_received(worker: Worker) -> float:
    """Events the scorer has received, whatever their outcome (its batches acknowledged);
    0 when it did not answer."""
    text = _answered(worker.metrics_text) or ""
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == "streambed_events_total")


def _part(config: Any, records: list, start: int, stop: int) -> list[tuple[str, str, bytes]]:
    """``(topic, key, value)`` of the events numbered ``start + 1`` to ``stop`` and of the
    labels that follow them in stream order (up to the next event)."""
    topics = {"event": config.topics.events, "label": config.topics.labels}
    out, events = [], 0
    for rec in records:
        events += rec.kind == "event"
        if events > stop:
            break
        if events > start:
            out.append((topics[rec.kind], rec.key, rec.value))
    return out


class PacedProducer:
    """Produces records in order, paced like a live source, in a thread, until they run
    out or :meth:`stop` is called: a part of the stream lasts as long as the test needs
    it, not a fixed time. Idempotent (a retried batch cannot overtake the next)."""

    def __init__(self, bootstrap: str, records: list[tuple[str, str, bytes]],
                 topic_counted: str, per_second: float = RECORDS_PER_SECOND) -> None:
        self.records, self.topic_counted = records, topic_counted
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                      enable_idempotence=True)
        self.pacer = Pacer(per_second)
        #: Records of ``topic_counted`` handed to the producer so far.
        self.counted = 0
        self.exhausted = False
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for topic, key, value in self.records:
                if self._stop.is_set():
                    return
                self.producer.send(topic, key=key.encode(), value=value)
                self.counted += topic == self.topic_counted
                self.pacer.tick()
            self.exhausted = True
        except BaseException as exc:  # re-raised in the test's thread by stop()
            self._error = exc

    def __enter__(self) -> PacedProducer:
        self.pacer.began = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        """Stop producing, wait for every send's acknowledgement; the records counted."""
        if self._stop.is_set():
            return self.counted
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the producer thread did not stop in 30 s"
        self.producer.flush(timeout=60)
        self.producer.close(timeout=10)
        if self._error is not None:
            raise self._error
        return self.counted


def test_feature_drift_alert_stays_quiet_then_fires_on_drift_and_is_delivered(
    kafka_bootstrap: str, topic_config: Path, prometheus_bin: str, alertmanager_bin: str,
    tmp_path: Path,
) -> None:
    _test_monitors(topic_config)
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
    mark("workers up")
    try:
        with WebhookReceiver() as receiver, \
             Alertmanager(alertmanager_bin, tmp_path / "alertmanager",
                          short_timer_config(ALERTMANAGER_CONFIG, receiver.url)) as am, \
             Prometheus(prometheus_bin, tmp_path / "prometheus",
                        [f"127.0.0.1:{worker.web_port}"], rules_with_for(1),
                        alertmanager=f"127.0.0.1:{am.port}") as prom:
            taught = _part(config, records, 0, TAUGHT)
            produce_to(kafka_bootstrap, taught, per_second=2 * RECORDS_PER_SECOND)
            promoted = _promote_first_cut(topic_config, config)
            wait_until(lambda: _answered(lambda: worker.metric(
                "streambed_model_info", model_version=promoted,
                feature_set=config.features.identity)) == 1.0, 60,
                "the promoted version to serve")

            def on_champions_reference() -> bool:
                drift = (_monitoring(worker) or {}).get("feature_drift", {})
                return {drift.get(f, {}).get("reference_source")
                        for f in WATCHED_FEATURES} == {"champion"}

            wait_until(on_champions_reference, 30,
                       "the scorer to compare with the promoted version's reference")
            mark("promoted")

            # ---- the same population, until every watched feature was judged on
            # JUDGED_WINDOWS disjoint windows (and parity computed)
            judged_from = time.time()
            judged: dict[str, set[tuple[float, int]]] = {f: set() for f in WATCHED_FEATURES}
            parity: list[float] = []

            def enough_judged() -> bool:
                snapshot = _monitoring(worker)
                if snapshot is None:
                    return False
                for feature, stats in snapshot["feature_drift"].items():
                    if feature in judged and stats["statistic"] is not None:
                        # one verdict per window: its statistic and size identify it
                        judged[feature].add((stats["statistic"], stats["tested_events"]))
                ratio = snapshot["impact"]["group"]["demographic_parity_ratio"]
                parity.extend([ratio] if ratio is not None else [])
                assert not same.exhausted, "the stationary pool ran out"
                return bool(parity) and min(map(len, judged.values())) >= JUDGED_WINDOWS

            stationary = _part(config, records, TAUGHT, SAME)
            with PacedProducer(kafka_bootstrap, stationary, config.topics.events) as same:
                try:
                    wait_until(enough_judged, 60, f"{JUDGED_WINDOWS} drift verdicts per "
                               "watched feature", step=0.2)
                except AssertionError as exc:
                    raise AssertionError(
                        f"{exc}; windows judged: {judged}; events produced: "
                        f"{same.counted}; drift: {_drift(worker)}"
                    ) from None
                sent = TAUGHT + same.stop()
            mark("judged")

            # Every event produced is judged: once the scorer has received them all, the
            # window holding the last ones completes, its verdict is published and held
            # for a whole window (scraped meanwhile), then replaced.
            wait_until(lambda: _events_received(worker) >= sent, 60,
                       f"the scorer to receive the {sent} events produced")
            drained = time.time()
            verdict_replaced = (math.floor(drained / WINDOW_SECONDS) + 2) * WINDOW_SECONDS
            wait_until(lambda: ((_monitoring(worker) or {}).get("refreshed_at") or 0)
                       >= verdict_replaced, 30,
                       "the last stationary window's verdict to be published and replaced",
                       step=0.2)
            checked_at = time.time()
            wait_until(lambda: _answered(
                lambda: prom.evaluated_after("streambed.alerts", checked_at)), 10,
                "the alert rules to be evaluated on it", step=0.2)
            span = f"{math.ceil(time.time() - judged_from) + 1}s"
            pending_or_firing, gauges, scrapes = (_asked(lambda q=q: prom.query(q), q) for q in (
                f'max_over_time(ALERTS{{alertname="FeatureDriftDetected"}}[{span}])',
                f'max_over_time(streambed_feature_drift_detected{{job="streambed"}}[{span}])',
                f'count_over_time(streambed_feature_drift_detected{{job="streambed"}}[{span}])'))
            assert pending_or_firing == [], (
                f"FeatureDriftDetected on the same population: {pending_or_firing}; "
                f"windows judged: {judged}; drift: {_drift(worker)}")
            assert {m["feature"]: v for m, v in gauges} == dict.fromkeys(WATCHED_FEATURES, 0.0)
            # Scraped throughout: at least once per window on average.
            assert len(scrapes) == len(WATCHED_FEATURES)
            assert min(v for _, v in scrapes) >= (time.time() - judged_from) / WINDOW_SECONDS
            assert ("GroupImpactDisparity", "group", "firing") not in _asked(
                prom.alerts, "Prometheus' alerts")
            assert _asked(lambda: prom.query('up{job="streambed"}'), "up")[0][1] == 1.0
            mark("same population quiet")

            # ---- the drift, until FeatureDriftDetected has been delivered
            fired: set[tuple[str, str]] = set()

            def firing() -> set[tuple[str, str]]:
                return {(n, label) for n, label, state in prom.alerts() if state == "firing"}

            def drift_and_disparity() -> bool:  # firing at some time, not all at once
                fired.update(_answered(firing) or set())
                assert not drift.exhausted, "the drift pool ran out"
                return {("GroupImpactDisparity", "group"), ("FeatureDriftDetected",
                        "amount_last"), ("FeatureDriftDetected", "credit_score_last")} <= fired

            with PacedProducer(kafka_bootstrap, _part(config, records, SAME, COUNT),
                               config.topics.events) as drift:
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
                        f"{_drift(worker)}") from None
                mark("firing")
                # Delivered: one notification for the drifting features, on the warning
                # route, with the runbook and links; grouped by alert name, not feature.
                path, note = receiver.wait_for(
                    _drift_notification("firing", {"amount_last", "credit_score_last"}), 30,
                    "the grouped FeatureDriftDetected notification")
                mark("notified")
            assert "WorkerDown" not in {n for n, _ in _asked(firing, "the firing alerts")}
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
            assert worker.metric("streambed_model_info", model_version=promoted,
                                 feature_set=config.features.identity) == 1.0
            delivered = [(p, b["status"], b["groupLabels"]["alertname"], len(b["alerts"]))
                         for p, b in receiver.notifications]
            print(f"windows judged on the same population: "
                  f"{ {f: len(v) for f, v in judged.items()} }; fired after the drift: "
                  f"{sorted(fired)}; notifications: {delivered}; seconds: {phases}")
    finally:
        learner.stop()
        worker.stop()
