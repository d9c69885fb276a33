"""Every scorer, and every restart, compares drift with the champion's reference.

On a real broker: the champion's version record carries a drift reference built by
monitors' own :func:`monitors.reference_from_examples` from simulated examples. Two
scorers in one group, one of them restarted, all name the same reference (its SHA-256 on
``/monitoring``, its example count on ``/metrics``). A stationary stream then flags few
feature-windows (the rate is measured over the windows judged, against the stated 1%);
a shifted stream sets ``streambed_feature_drift_detected{feature}`` within the stated
delay (3 windows: docs/monitoring.md).

Small windows keep it short: disjoint 5-second windows, verdicts from 40 events and one
pair of windows (the dispersion).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from governance import LearnerCore
from governance.records import dumps
from monitors import reference_from_examples
from streams.config import Config, load_config
from streams.topics import ensure_topics
from tests.support import Worker, free_port, fresh_config, wait_until

pytestmark = pytest.mark.kafka

WATCHED = ["amount_last", "income_last"]
WINDOW_SECONDS = 5.0
#: Events per second over both scorers: about 100 per scorer and window.
RATE = 100.0
EXAMPLES = 1000
STATED_DELAY_WINDOWS = 3


def drift_config(tmp_path: Path, bootstrap: str) -> Path:
    path = fresh_config(tmp_path, bootstrap, prefix="drift")
    raw = yaml.safe_load(path.read_text())
    raw["monitors"]["refresh_seconds"] = 0.5
    raw["monitors"]["drift"] = {
        "features": WATCHED,
        "reference": {"source": "champion", "examples": EXAMPLES, "min_examples": 500},
        "window_seconds": WINDOW_SECONDS, "window_buckets": 5, "min_window_events": 40,
        "min_dispersion_pairs": 1,
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def draw(rng: random.Random, shift: float = 0.0) -> tuple[float, float]:
    """One applicant's amount and income; ``shift`` moves the amount by that many sd."""
    return max(0.0, rng.gauss(1000.0 + 300.0 * shift, 300.0)), max(0.0, rng.gauss(4000, 800))


def champion_with_reference(config: Config) -> tuple[bytes, str, str]:
    """The champion's record (version 0, which every score is 0.5) carrying a reference of
    simulated examples as the scorer will compute their features; its version and SHA-256."""
    core = LearnerCore(spec=config.model.spec, promotion=config.model.promotion,
                       feature_set=config.features.identity)
    (record,) = [r for r in core.start(now_ms=0) if hasattr(r, "artifact")]
    rng = random.Random(1)
    rows = [dict(zip(WATCHED, draw(rng), strict=True)) for _ in range(EXAMPLES)]
    reference = reference_from_examples(
        config.monitors, rows, [0.5] * EXAMPLES, [0] * EXAMPLES,
        [{"group": "A", "age_band": "26-40"}] * EXAMPLES)
    record = record.model_copy(update={"drift_reference": reference.to_json()})
    return dumps(record), record.version, hashlib.sha256(reference.encode()).hexdigest()


def monitoring(worker: Worker) -> dict[str, Any]:
    url = f"http://127.0.0.1:{worker.web_port}/monitoring"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


class Stream:
    """Events paced like a live source, one producer, each with the wall clock's time."""

    def __init__(self, bootstrap: str, config: Config) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.topic = config.topics.events
        self.rng = random.Random(7)
        self.sent = 0
        self.sent_in_run = 0

    def run(self, seconds: float, shift: float = 0.0, every: Any = None) -> None:
        """Send RATE events a second for ``seconds``; call ``every()`` each half second."""
        start = time.monotonic()
        next_look = start
        self.sent_in_run = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * RATE) - self.sent_in_run
            for _ in range(max(due, 0)):
                self.send(shift)
            if every is not None and time.monotonic() >= next_look:
                every()
                next_look += 0.5
            time.sleep(0.02)
        self.producer.flush(timeout=30)

    def send(self, shift: float) -> None:
        amount, income = draw(self.rng, shift)
        i = self.sent
        event = {"event_id": f"e{i}", "entity_id": f"u{i % 5000}", "ts": int(time.time() * 1000),
                 "group": self.rng.choice("ABC"), "amount": amount, "income": income,
                 "credit_score": 650, "channel": "web", "age_band": "26-40"}
        self.producer.send(self.topic, key=event["entity_id"].encode(),
                           value=json.dumps(event).encode())
        self.sent += 1
        self.sent_in_run += 1

    def close(self) -> None:
        self.producer.close()


NAN = float("nan")


def scrape(worker: Worker) -> dict[tuple[str, str], float]:
    """One scrape: (name, its feature or outcome label) -> value."""
    out = {}
    for family in text_string_to_metric_families(worker.metrics_text()):
        for sample in family.samples:
            label = sample.labels.get("feature") or sample.labels.get("outcome") or ""
            out[sample.name, label] = sample.value
    return out


class Verdicts:
    """Each scorer's drift verdicts per feature, one per judged window (a verdict's
    statistic is the same at every refresh until the next window completes)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.last: dict[tuple[int, str], float] = {}
        self.judged: list[tuple[int, str, bool]] = []
        self.timeline: list[tuple[float, ...]] = []

    def look(self) -> None:
        samples = [scrape(w) for w in self.workers]
        self.timeline.append(tuple(s.get(("streambed_events_total", "scored"), 0.0)
                                   for s in samples))
        for i, values in enumerate(samples):
            for feature in WATCHED:
                statistic = values.get(("streambed_feature_drift_statistic", feature), NAN)
                if math.isnan(statistic) or self.last.get((i, feature)) == statistic:
                    continue
                self.last[i, feature] = statistic
                detected = values.get(("streambed_feature_drift_detected", feature))
                self.judged.append((i, feature, detected == 1.0))

    def flagged(self) -> int:
        return sum(d for _, _, d in self.judged)


def test_scorers_and_restarts_share_the_champions_reference_and_judge_drift_by_it(
    kafka_bootstrap: str, tmp_path: Path, worker_factory
) -> None:
    path = drift_config(tmp_path, kafka_bootstrap)
    config = load_config(path)
    ensure_topics(config)
    record, version, sha = champion_with_reference(config)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(config.topics.model_versions, key=version.encode(), value=record)
    producer.flush(timeout=30)
    producer.close()

    one = worker_factory(path, free_port())
    two = worker_factory(path, free_port())
    wait_until(lambda: all(w.metric("streambed_assigned_partitions") > 0 for w in (one, two)),
               60, "both scorers to hold partitions")
    two.stop()          # a restart: the same reference, not the first events after it
    two.start()
    workers = [one, two]

    def same_reference() -> bool:
        infos = [monitoring(w)["drift_reference"] for w in workers]
        return all(i["sha256"] == sha and i["version"] == version for i in infos)

    wait_until(same_reference, 30, "both scorers to read the champion's reference")
    for w in workers:
        info = monitoring(w)["drift_reference"]
        assert info == {"source": "champion", "version": version, "champion": version,
                        "sha256": sha, "examples": EXAMPLES, "baseline_sha256": None,
                        "refused": []}
        wait_until(lambda w=w: all(
            w.metric("streambed_feature_drift_reference_events", feature=f) == EXAMPLES
            for f in WATCHED), 10, "the reference's example count on /metrics")

    stream = Stream(kafka_bootstrap, config)
    verdicts = Verdicts(workers)
    try:
        # Stationary: a verdict needs a pair of complete windows (the dispersion), then
        # one per window; 40 s give each scorer 4 to 6 judged windows per feature.
        stream.run(40.0, every=verdicts.look)
        judged, flagged = len(verdicts.judged), verdicts.flagged()
        assert judged >= 8, (
            f"too few windows judged: {verdicts.judged} "
            f"{[monitoring(w)['feature_drift'] for w in workers]} "
            f"{[w.metric('streambed_events_total', outcome='scored') for w in workers]} "
            f"{[w.metric('streambed_events_total', outcome='rejected') for w in workers]} "
            f"{stream.sent} {verdicts.timeline}")
        # At the stated 1%, 3 or more flags of 8 to 24 feature-windows has probability
        # under 0.002 (binomial).
        assert flagged <= 2, (flagged, judged, verdicts.judged)
        print(f"stationary: {flagged} of {judged} feature-windows flagged "
              f"({flagged / judged:.1%}; stated 1%)")
        for w in workers:
            snap = monitoring(w)["feature_drift"]
            assert all(snap[f]["reference_source"] == "champion" for f in WATCHED)

        # A 2-sd shift of the amount: flagged within the stated delay (3 windows), plus a
        # refresh and the batching's latency.
        shifted_at = time.monotonic()
        seen: dict[int, float] = {}

        def look_shift() -> None:
            for i, w in enumerate(workers):
                if i not in seen and w.metric("streambed_feature_drift_detected",
                                              feature="amount_last") == 1.0:
                    seen[i] = time.monotonic() - shifted_at

        stream.run(STATED_DELAY_WINDOWS * WINDOW_SECONDS + 3.0, shift=2.0, every=look_shift)
        print(f"shift flagged after {seen} s (window {WINDOW_SECONDS} s)")
        assert set(seen) == {0, 1}, (
            f"amount_last drift not flagged by every scorer within "
            f"{STATED_DELAY_WINDOWS} windows: {seen}\n{one.log()}\n{two.log()}")
    finally:
        stream.close()
