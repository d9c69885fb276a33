"""Worker throughput on a real broker, against a plain consumer of the same topic.

Pre-produces N simulated events (quickstart config, 4 partitions), then in one run:
  baseline  kafka-python reads the N records and json-decodes them (no features, no model)
  worker    `streambed worker` validates, featurises, scores and publishes each of them;
            timed from its first scored event to its last, read from its own /metrics
Prints events/s for both, their ratio, and the worker's scoring-latency quantiles.

    .venv/bin/python bench/worker_bench.py [--count 20000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from kafka import KafkaConsumer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streams.config import load_config  # noqa: E402
from streams.devtools.kafka_local import BrokerOptions, start, stop  # noqa: E402
from streams.devtools.simulate import SimulationOptions, Simulator  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402
from tests.support import Worker, free_port, produce, wait_until  # noqa: E402


def baseline(bootstrap: str, topic: str, count: int) -> float:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             max_poll_records=5000)
    parts = consumer.partitions_for_topic(topic) or set()
    consumer.assign([TopicPartition(topic, p) for p in parts])
    consumer.seek_to_beginning()
    began, seen = time.perf_counter(), 0
    while seen < count:
        for recs in consumer.poll(timeout_ms=500).values():
            for r in recs:
                json.loads(r.value)
            seen += len(recs)
    took = time.perf_counter() - began
    consumer.close()
    return count / took


def quantile(worker: Worker, q: float) -> float:
    """A latency quantile (seconds) from the histogram buckets, by linear interpolation."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets = []
    for fam in text_string_to_metric_families(worker.metrics_text()):
        for s in fam.samples:
            if s.name == "streambed_event_latency_seconds_bucket":
                buckets.append((float(s.labels["le"]), s.value))
    buckets.sort()
    total = buckets[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= q * total:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (q * total - prev_n) / max(n - prev_n, 1)
        prev_le, prev_n = le, n
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=20000)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="streambed-bench-"))
    broker = BrokerOptions(port=free_port(), data_dir=work / "kafka")
    try:
        start(broker, log=lambda line: None)
        raw = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
        suffix = uuid.uuid4().hex[:6]
        raw["broker"] = f"kafka://{broker.bootstrap}"
        raw["name"] = f"bench{suffix}"
        raw["topics"] = {"events": f"ev.{suffix}", "labels": f"lab.{suffix}",
                         "scored": f"sc.{suffix}", "dlq": f"dlq.{suffix}",
                         "model_versions": f"mv.{suffix}", "partitions": 4}
        cfg_path = work / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        config = load_config(cfg_path)
        ensure_topics(config)
        opts = SimulationOptions(count=args.count, seed=1, entities=2000)
        events = [(r.key, r.value) for r in Simulator(config, opts).records()
                  if r.kind == "event"]
        produce(broker.bootstrap, config.topics.events, events)

        base_rate = baseline(broker.bootstrap, config.topics.events, len(events))

        worker = Worker(cfg_path, free_port(), work / "worker")
        worker.start()
        try:
            scored = lambda: worker.metric("streambed_events_total", outcome="scored")  # noqa: E731
            wait_until(lambda: scored() > 0, 60, "the first scored event", step=0.05)
            began, first = time.perf_counter(), scored()
            wait_until(lambda: scored() >= len(events), 600, "every event scored", step=0.1)
            worker_rate = (len(events) - first) / (time.perf_counter() - began)
            p50, p99 = quantile(worker, 0.5), quantile(worker, 0.99)
        finally:
            worker.stop()
        print(f"events: {len(events)} on 4 partitions, {len(config.features.features)} features")
        print(f"baseline (kafka-python consume + json.loads): {base_rate:,.0f} events/s")
        print(f"worker (validate, featurise, score, publish): {worker_rate:,.0f} events/s")
        print(f"ratio worker/baseline: {worker_rate / base_rate:.3f}")
        print(f"scoring latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
              "(backlog drained at full speed: includes queueing)")
    finally:
        stop(broker, log=lambda line: None)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
