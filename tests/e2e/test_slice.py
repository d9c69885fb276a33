"""End to end on the real broker: events → features → score → scored, bad input → DLQ, labels.

Each test runs ``streambed worker`` as a real process against the session's Kafka broker,
produces with a real producer and reads the output topics back. Features in the scored
records are checked against the brute-force reference in features/, and every count is
checked against what was produced: accepted + rejected = received.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from features.reference import reference_features
from streams.config import Config, load_config
from streams.devtools.simulate import SimRecord, SimulationOptions, Simulator
from streams.scorer.champion import Champion
from streams.topics import ensure_topics
from streams.validation import EventValidator, ValidEvent
from tests.support import (
    free_port,
    json_values,
    produce,
    read_scored_for,
    read_topic,
    wait_until,
)

pytestmark = pytest.mark.kafka


def _stream(config: Config, count: int, seed: int) -> list[SimRecord]:
    opts = SimulationOptions(count=count, seed=seed, entities=20, malformed_ratio=0.12,
                             disorder_ms=90_000, mean_gap_ms=15_000)
    return list(Simulator(config, opts).records())


def _valid_events(config: Config, count: int, seed: int) -> list[SimRecord]:
    return [r for r in _stream(config, count, seed) if r.kind == "event" and r.valid]


def _late_events(config: Config, valid: list[SimRecord]) -> list[SimRecord]:
    """Two events far behind the watermark: the worker must dead-letter them as late."""
    out = []
    for i, rec in enumerate(valid[:2]):
        event = json.loads(rec.value)
        event["event_id"] = f"late-{i}"
        event["ts"] = valid[-1].ts_ms - config.event.allowed_lateness_ms - 60_000 - i
        out.append(SimRecord("event", rec.key, json.dumps(event).encode(), False, event["ts"]))
    return out


def _expected_features(config: Config, accepted: list[SimRecord]) -> dict[str, dict]:
    """Brute force over the accepted events in production order (= offset order per entity)."""
    validator = EventValidator(config.event)
    events = []
    for rec in accepted:
        ev = validator.validate(rec.value, rec.ts_ms + 1)
        assert isinstance(ev, ValidEvent)
        events.append(ev)
    values = reference_features(
        [(e.entity_id, e.ts_ms, e.attrs) for e in events], config.features)
    return {e.event_id: v for e, v in zip(events, values, strict=True)}


def _assert_features_equal(got: dict, want: dict, event_id: str) -> None:
    assert got.keys() == want.keys(), event_id
    for name, w in want.items():
        g = got[name]
        if w is None or g is None:
            assert g is None and w is None, (event_id, name, g, w)
        else:
            assert g == pytest.approx(w, rel=1e-9, abs=1e-12), (event_id, name, g, w)


def test_slice_scores_valid_events_dead_letters_bad_ones_and_joins_labels(
    kafka_bootstrap: str, topic_config: Path, worker_factory
) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    records = _stream(config, count=400, seed=11)
    events = [r for r in records if r.kind == "event"]
    valid = [r for r in events if r.valid]
    late = _late_events(config, valid)
    malformed = [r for r in events if not r.valid]
    labels = [r for r in records if r.kind == "label"]
    assert len(valid) > 300 and len(malformed) > 20

    worker = worker_factory(topic_config, free_port())
    produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in events + late])

    scored = json_values(read_topic(kafka_bootstrap, config.topics.scored, len(valid)))
    dead = json_values(read_topic(kafka_bootstrap, config.topics.dlq,
                                  len(malformed) + len(late)))
    assert len(scored) == len(valid), "exactly one scored record per accepted event"
    assert len(dead) == len(malformed) + len(late)

    expected = _expected_features(config, valid)
    assert {s["event_id"] for s in scored} == set(expected)
    # No learner runs: every event is scored by version 0, the untrained model (0.5).
    version_0 = Champion.bootstrap(config.model.spec, config.features.identity)
    for rec in scored:
        _assert_features_equal(rec["features"], expected[rec["event_id"]], rec["event_id"])
        assert rec["feature_set"] == config.features.identity
        assert rec["score"] == 0.5 and rec["decision"] == version_0.decision(0.5)
        assert rec["model_version"] == version_0.version
        assert rec["source"]["topic"] == config.topics.events
    # One outcome per input record: the sources of the scored records and dead letters
    # are every offset of every partition the events went to, each once.
    positions = [(r["source"]["partition"], r["source"]["offset"]) for r in scored + dead]
    assert len(set(positions)) == len(positions) == len(events) + len(late)
    sizes = Counter(partition for partition, _ in positions)
    assert set(positions) == {(p, o) for p, n in sizes.items() for o in range(n)}

    reasons = [d["reason"] for d in dead]
    assert reasons.count("late") == len(late)
    limit = config.event.max_payload_bytes
    assert {base64.b64decode(d["payload_base64"]) for d in dead if d["reason"] != "late"} == \
        {r.value[:limit] for r in malformed}, "the DLQ keeps the original bytes"
    huge = [d for d in dead if d["reason"] == "too_large"]
    assert huge and all(d["payload_truncated"] and d["payload_bytes"] > limit for d in huge)
    assert all(d["detail"] and d["source"]["topic"] == config.topics.events for d in dead)

    def m(name: str, **labels: str) -> float:
        return worker.metric(name, **labels)

    assert m("streambed_events_total", outcome="scored") == len(valid)
    assert m("streambed_events_total", outcome="rejected") == len(malformed)
    assert m("streambed_events_total", outcome="late") == len(late)
    assert sum(m("streambed_rejections_total", reason=r) for r in set(reasons)) == len(dead)
    assert m("streambed_event_latency_seconds_count") == len(valid)
    assert m("streambed_model_info", model_version=scored[-1]["model_version"],
             feature_set=config.features.identity) == 1.0

    never = {"event_id": "never-scored", "entity_id": "u0", "label": 1, "ts": valid[-1].ts_ms}
    bogus = [("u0", b'{"event_id": "nope"'), ("u0", json.dumps(never).encode())]
    produce(kafka_bootstrap, config.topics.labels,
            [(r.key, r.value) for r in labels] + [(r.key, r.value) for r in labels[:3]] + bogus)

    def labels_settled() -> bool:
        done = sum(m("streambed_labels_total", outcome=o)
                   for o in ("joined", "duplicate", "expired", "unmatched", "invalid"))
        return done + m("streambed_labels_waiting") == len(labels) + 3 + len(bogus)

    wait_until(labels_settled, 60, "every label to be counted")
    wait_until(lambda: m("streambed_labels_waiting") == 1, 15, "the refresh timer")
    assert m("streambed_labels_total", outcome="joined") == len(labels)
    assert m("streambed_labels_total", outcome="duplicate") == 3
    assert m("streambed_labels_total", outcome="invalid") == 1
    assert m("streambed_training_examples_total") == len(labels)
    examples = json_values(read_topic(kafka_bootstrap, config.topics.training, len(labels)))
    assert sorted(e["event_id"] for e in examples) == sorted(
        json.loads(r.value)["event_id"] for r in labels), "one example per joined label"
    text = worker.metrics_text()
    for name in ("streambed_events_total", "streambed_labels_total",
                 "streambed_event_latency_seconds_bucket", "streambed_model_info",
                 "streambed_last_event_timestamp_seconds"):
        assert name in text


def test_feature_state_survives_a_worker_restart(
    kafka_bootstrap: str, topic_config: Path, worker_factory
) -> None:
    config = load_config(topic_config)
    ensure_topics(config)
    valid = _valid_events(config, count=200, seed=5)
    first, second = valid[:120], valid[120:]

    port = free_port()
    worker = worker_factory(topic_config, port)
    produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in first])
    assert len(read_topic(kafka_bootstrap, config.topics.scored, len(first))) == len(first)
    worker.stop()

    worker = worker_factory(topic_config, free_port())  # recovers tables from changelogs
    produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in second])
    ids, scored = read_scored_for(kafka_bootstrap, config.topics.scored, valid)
    # Output is at-least-once: an event whose offset was not committed before the stop is
    # delivered again. Its record is re-sent identical, and its state is not applied twice.
    by_id: dict[str, dict] = {}
    for rec in scored:
        again = by_id.setdefault(rec["event_id"], rec)
        assert {k: v for k, v in again.items() if k != "scored_at"} == \
            {k: v for k, v in rec.items() if k != "scored_at"}, "a redelivery differs"
    assert set(by_id) == ids, (
        f"lost {sorted(ids - set(by_id))}; worker says scored="
        f"{worker.metric('streambed_events_total', outcome='scored')} rejected="
        f"{worker.metric('streambed_events_total', outcome='rejected')} late="
        f"{worker.metric('streambed_events_total', outcome='late')} redelivered="
        f"{worker.metric('streambed_redeliveries_total')}\n{worker.log()}")
    expected = _expected_features(config, valid)
    for rec in scored:
        _assert_features_equal(rec["features"], expected[rec["event_id"]], rec["event_id"])


def _commit_past_everything(bootstrap: str, config: Config, topic: str) -> None:
    """Move the scorers' group offsets on ``topic`` to its end, as faust-streaming does
    when it commits past records it skipped (the group must have no live member: a
    stopped scorer is a static member, which stays until its session times out)."""
    group = f"streambed-{config.name}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        wait_until(lambda: not admin.describe_consumer_groups([group])[0].members, 30,
                   "the stopped scorer's session to time out")
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=f"streambed-{config.name}")
    tps = [TopicPartition(topic, p) for p in range(config.topics.partitions)]
    ends = consumer.end_offsets(tps)
    consumer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in tps})
    consumer.close()


def test_records_committed_past_but_never_processed_are_read_back(
    kafka_bootstrap: str, topic_config: Path, worker_factory
) -> None:
    """faust-streaming can commit past records it skipped across a rebalance. Here that is
    forced: the group's offsets are moved to the end while the worker is down. Nothing
    later reveals the gap, so the worker's tail check must find and process it."""
    config = load_config(topic_config)
    ensure_topics(config)
    valid = _valid_events(config, count=120, seed=9)
    first, second = valid[:60], valid[60:]
    worker = worker_factory(topic_config, free_port())
    produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in first])
    assert len(read_topic(kafka_bootstrap, config.topics.scored, len(first))) >= len(first)
    worker.stop()

    produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in second])
    _commit_past_everything(kafka_bootstrap, config, config.topics.events)

    worker = worker_factory(topic_config, free_port())
    ids, scored = read_scored_for(kafka_bootstrap, config.topics.scored, valid, 60)
    assert {s["event_id"] for s in scored} == ids, "the skipped tail was read back"
    # Counted once the batch is published and its tables committed: just after its
    # records can be read, not before.
    wait_until(lambda: worker.metric("streambed_skipped_offsets_total") >= len(second), 15,
               "the read-back batch to be counted")
    assert worker.metric("streambed_skipped_offsets_total") == len(second)
    expected = _expected_features(config, valid)
    for rec in scored:
        _assert_features_equal(rec["features"], expected[rec["event_id"]], rec["event_id"])


def test_labels_committed_past_but_never_processed_are_read_back(
    kafka_bootstrap: str, topic_config: Path, worker_factory
) -> None:
    """The same for labels: a label the consumer skipped would never join its event and
    no count would show it (a chaos run once ended with five of 6,000 labels never
    joined and nothing counted). The group's labels offsets are moved to the end while
    the worker is down; the tail check reads the skipped labels back and each gives its
    training example."""
    config = load_config(topic_config)
    ensure_topics(config)
    opts = SimulationOptions(count=80, seed=13, entities=10, mean_gap_ms=15_000,
                             label_delay_ms=60_000)
    records = list(Simulator(config, opts).records())
    events = [r for r in records if r.kind == "event"]
    labels = [r for r in records if r.kind == "label"]
    first, second = labels[: len(labels) // 2], labels[len(labels) // 2:]
    assert len(first) > 20 and len(second) > 20

    worker = worker_factory(topic_config, free_port())
    produce(kafka_bootstrap, config.topics.events, [(r.key, r.value) for r in events])
    produce(kafka_bootstrap, config.topics.labels, [(r.key, r.value) for r in first])
    assert len(read_topic(kafka_bootstrap, config.topics.training, len(first))) == len(first)
    worker.stop()

    produce(kafka_bootstrap, config.topics.labels, [(r.key, r.value) for r in second])
    _commit_past_everything(kafka_bootstrap, config, config.topics.labels)

    worker = worker_factory(topic_config, free_port())
    wanted = {json.loads(r.value)["event_id"] for r in labels}
    examples = json_values(read_topic(
        kafka_bootstrap, config.topics.training, len(labels),
        done=lambda out: {json.loads(r.value)["event_id"] for r in out} >= wanted))
    assert {e["event_id"] for e in examples} == wanted, "an example for every label"
    # At-least-once: an event or label redelivered after the restart sends its example
    # again, identical (the learner drops repeats by event_id).
    by_id: dict[str, dict] = {}
    for e in examples:
        assert by_id.setdefault(e["event_id"], e) == e, "a repeated example differs"
    wait_until(lambda: worker.metric("streambed_skipped_offsets_total") >= len(second), 15,
               "the read-back batch to be counted")
    assert worker.metric("streambed_skipped_offsets_total") == len(second)
