"""The worker's per-record logic, driven with plain dicts: every record ends in one outcome."""

from __future__ import annotations

import json
import pickle

import pytest
from prometheus_client import CollectorRegistry

from monitors import Metrics, Monitoring
from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.model import OnlineModel
from streams.records import Source
from streams.scorer.processor import EntityRecord, PartitionState, Processor
from tests.support import REPO

CONFIG = load_config(REPO / "examples" / "quickstart.yaml")
NOW_MS = 1_800_000_000_000


class PickledDict(dict):
    """Stores values pickled, like the worker's Faust tables, so state must survive pickle."""

    def __setitem__(self, key, value):
        super().__setitem__(key, pickle.dumps(value))

    def __getitem__(self, key):
        return pickle.loads(super().__getitem__(key))

    def get(self, key, default=None):
        return self[key] if key in self else default  # noqa: SIM401 - self.get recurses


def make() -> tuple[Processor, Metrics]:
    metrics = Metrics(CollectorRegistry())
    monitoring = Monitoring(CONFIG.monitors, CONFIG.features.names, metrics)
    model = OnlineModel(CONFIG.model, CONFIG.features.identity)
    return Processor(CONFIG, model, metrics, monitoring), metrics


def count(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def src(offset: int, partition: int = 0) -> Source:
    return Source(topic="events", partition=partition, offset=offset)


def event(i: int, ts: int, entity: str = "u1", **attrs: object) -> bytes:
    body = {"event_id": f"e{i}", "entity_id": entity, "ts": ts, "group": "A",
            "amount": 10.0, "income": 100.0, "credit_score": 600, "channel": "web", **attrs}
    return json.dumps(body).encode()


def label(i: int, ts: int, value: int = 1, entity: str = "u1") -> bytes:
    return json.dumps({"event_id": f"e{i}", "entity_id": entity, "label": value,
                       "ts": ts}).encode()


def test_received_equals_scored_plus_rejected_plus_late_on_a_messy_stream() -> None:
    p, metrics = make()
    entities, parts = PickledDict(), PickledDict()
    opts = SimulationOptions(count=800, seed=4, entities=30, malformed_ratio=0.1,
                             disorder_ms=600_000, mean_gap_ms=10_000)
    received = 0
    for i, rec in enumerate(Simulator(CONFIG, opts).records()):
        if rec.kind == "event":
            received += 1
            result = p.handle_event(rec.value, src(i), rec.ts_ms + 1, NOW_MS, entities, parts)
            assert (result.scored is None) != (result.dead_letter is None)
    outcomes = {o: count(metrics, "streambed_events_total", outcome=o)
                for o in ("scored", "rejected", "late", "duplicate")}
    assert sum(outcomes.values()) == received
    assert outcomes["late"] > 0 and outcomes["rejected"] > 0
    reasons = sum(count(metrics, "streambed_rejections_total", reason=r)
                  for r in ("too_large", "malformed_json", "not_an_object", "missing_field",
                            "unknown_field", "wrong_type", "out_of_range", "bad_timestamp",
                            "late"))
    assert reasons == outcomes["rejected"] + outcomes["late"]


def test_label_outcomes_joined_duplicate_expired_waiting_and_invalid() -> None:
    p, metrics = make()
    entities, parts = PickledDict(), PickledDict()
    ts = NOW_MS - 10 * 86_400_000
    for i in range(3):
        p.handle_event(event(i, ts + i), src(i), NOW_MS, NOW_MS, entities, parts)
    assert p.handle_label(label(0, ts + 10), src(0), NOW_MS, entities).outcome == "joined"
    assert p.handle_label(label(0, ts + 20), src(1), NOW_MS, entities).outcome == "duplicate"
    late_label = label(1, ts + 2 * 86_400_000)
    assert p.handle_label(late_label, src(2), NOW_MS, entities).outcome == "expired"
    assert p.handle_label(label(9, ts), src(3), NOW_MS, entities).outcome == "waiting"
    bad = p.handle_label(b'{"event_id": 1', src(4), NOW_MS, entities)
    assert bad.outcome == "invalid" and bad.dead_letter is not None
    assert count(metrics, "streambed_model_updates_total") == 1


def test_a_label_that_arrives_before_its_event_is_joined_when_the_event_comes() -> None:
    p, metrics = make()
    entities, parts = PickledDict(), PickledDict()
    assert p.handle_label(label(5, NOW_MS), src(0), NOW_MS, entities).outcome == "waiting"
    p.handle_event(event(5, NOW_MS - 1000), src(0), NOW_MS, NOW_MS, entities, parts)
    assert count(metrics, "streambed_labels_total", outcome="joined") == 1
    assert entities["u1"].early_labels == {}


def test_a_redelivered_event_is_not_applied_twice_and_is_resent_identical() -> None:
    p, metrics = make()
    entities, parts = PickledDict(), PickledDict()
    first = p.handle_event(event(1, NOW_MS), src(7), NOW_MS, NOW_MS, entities, parts).scored
    p.handle_event(event(2, NOW_MS + 1), src(8), NOW_MS, NOW_MS, entities, parts)
    again = p.handle_event(event(1, NOW_MS), src(7), NOW_MS, NOW_MS + 5, entities, parts).scored
    assert again is not None and first is not None
    assert again.model_dump(exclude={"scored_at"}) == first.model_dump(exclude={"scored_at"})
    third = p.handle_event(event(3, NOW_MS + 2), src(9), NOW_MS, NOW_MS, entities, parts).scored
    assert third is not None and third.features["apps_lifetime"] == 3
    assert count(metrics, "streambed_redeliveries_total") == 1


def test_an_offset_gap_is_reported_with_the_first_missing_offset() -> None:
    p, _ = make()
    entities, parts = PickledDict(), PickledDict()
    assert p.missing_before(src(5), parts) is None  # nothing known about the partition yet
    p.handle_event(event(1, NOW_MS), src(5), NOW_MS, NOW_MS, entities, parts)
    p.handle_event(b"not json", src(6), NOW_MS, NOW_MS, entities, parts)
    assert p.missing_before(src(7), parts) is None
    assert p.missing_before(src(9), parts) == 7
    assert p.missing_before(src(7, partition=1), parts) is None
    assert isinstance(parts["events:0"], PartitionState)


@pytest.mark.parametrize("late_by_ms", [300_001, 10_000_000])
def test_events_behind_the_partition_watermark_beyond_the_lateness_are_dead_lettered(
    late_by_ms: int,
) -> None:
    p, metrics = make()
    entities, parts = PickledDict(), PickledDict()
    p.handle_event(event(1, NOW_MS), src(0), NOW_MS, NOW_MS, entities, parts)
    late = p.handle_event(event(2, NOW_MS - late_by_ms, entity="u2"), src(1), NOW_MS, NOW_MS,
                          entities, parts)
    assert late.dead_letter is not None and late.dead_letter.reason == "late"
    ok = p.handle_event(event(3, NOW_MS - 300_000, entity="u3"), src(2), NOW_MS, NOW_MS,
                        entities, parts)
    assert ok.scored is not None, "exactly the allowed lateness is still on time"
    assert isinstance(entities.get("u1"), EntityRecord) and entities.get("u2") is None
    assert count(metrics, "streambed_events_total", outcome="late") == 1
