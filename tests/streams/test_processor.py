"""The scorer's batch logic, driven with plain dicts: every record ends in exactly one outcome.

No Kafka here: the tables are :class:`StateTable` objects over dicts, and a batch's result
is inspected directly (what it would send, what it counts once its sends are accepted).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client import CollectorRegistry

from governance import TrainingExample
from monitors.metrics import Metrics
from streams.config import Config, load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.records import DLQ_REASONS, DeadLetter, ScoredRecord
from streams.scorer.batch import BatchResult, InRecord
from streams.scorer.champion import Champion
from streams.scorer.processor import Processor, Tables, partition_key
from streams.scorer.state import PENDING_FORMAT_VERSION, EntityEntry, Pending, decode
from streams.scorer.tables import StateTable
from tests.support import REPO

CONFIG = load_config(REPO / "examples" / "quickstart.yaml")
NOW_MS = 1_800_000_000_000
DAY_MS = 86_400_000


def tables() -> Tables:
    return Tables(*(StateTable(n, {}, f"cl-{n}") for n in ("entities", "pending", "held",
                                                          "partitions")))


def make(config: Config = CONFIG, champion: Champion | None = None) -> Processor:
    return Processor(config, tables(),
                     champion or Champion.bootstrap(config.model.spec, config.features.identity))


def rec(raw: bytes, offset: int, partition: int = 0, ts_ms: int = NOW_MS,
        topic: str = "events") -> InRecord:
    return InRecord(raw, b"k", topic, partition, offset, ts_ms)


def event(i: int | str, ts: int, entity: str = "u1", **attrs: Any) -> bytes:
    body = {"event_id": f"e{i}", "entity_id": entity, "ts": ts, "group": "A",
            "amount": 10.0, "income": 100.0, "credit_score": 600, "channel": "web", **attrs}
    return json.dumps(body).encode()


def label(i: int | str, ts: int, value: int = 1, entity: str = "u1") -> bytes:
    return json.dumps({"event_id": f"e{i}", "entity_id": entity, "label": value,
                       "ts": ts}).encode()


def sent(res: BatchResult, topic: str) -> list[dict[str, Any]]:
    return [json.loads(value) for t, _, value, _ in res.sends if t == topic]


def scored(res: BatchResult) -> list[dict[str, Any]]:
    return sent(res, CONFIG.topics.scored)


def dead(res: BatchResult) -> list[dict[str, Any]]:
    return sent(res, CONFIG.topics.dlq)


def outcomes(res: BatchResult) -> int:
    return sum(res.events.values())


def test_received_equals_scored_plus_rejected_plus_late_plus_duplicate_on_a_messy_stream(
) -> None:
    p = make()
    opts = SimulationOptions(count=1500, seed=4, entities=30, malformed_ratio=0.1,
                             disorder_ms=600_000, mean_gap_ms=10_000)
    events = [r for r in Simulator(CONFIG, opts).records() if r.kind == "event"]
    total = BatchResult()
    for start in range(0, len(events), 97):  # batches of odd sizes, offsets in order
        batch = [rec(r.value, start + i, ts_ms=r.ts_ms + 1)
                 for i, r in enumerate(events[start:start + 97])]
        res = p.process_events(batch, NOW_MS)
        assert outcomes(res) == len(batch)
        assert len(scored(res)) + len(dead(res)) == len(batch)
        total.events.update(res.events)
        total.rejections.update(res.rejections)
    assert sum(total.events.values()) == len(events)
    assert total.events["late"] > 0 and total.events["rejected"] > 0
    assert sum(total.rejections.values()) == total.events["rejected"] + total.events["late"]
    assert set(total.rejections) <= set(DLQ_REASONS)


def test_scored_records_and_dead_letters_match_their_json_schemas() -> None:
    """The hot path builds records without pydantic: hold them to the shipped schemas."""
    p = make()
    res = p.process_events([rec(event(1, NOW_MS), 0), rec(b"\x00\xff{", 1),
                            rec(event(2, NOW_MS + 1, amount=1e308), 2),
                            rec(event(3, NOW_MS + 2, amount=1e308), 3)], NOW_MS)
    schemas = REPO / "streams" / "schemas"
    for record in scored(res):
        jsonschema.validate(record, json.loads((schemas / "scored.schema.json").read_text()))
        ScoredRecord.model_validate(record)
    jsonschema.validate(dead(res)[0], json.loads(
        (schemas / "dead_letter.schema.json").read_text()))
    letter = DeadLetter.model_validate(dead(res)[0])
    assert letter.original_bytes() == b"\x00\xff{" and letter.reason == "malformed_json"


def test_counts_reach_the_metrics_only_when_the_shell_says_the_batch_is_final() -> None:
    p = make()
    metrics = Metrics(CollectorRegistry())
    res = p.process_events([rec(event(1, NOW_MS), 0), rec(b"[]", 1)], NOW_MS)

    def n(outcome: str) -> float:
        return metrics.registry.get_sample_value("streambed_events_total",
                                                 {"outcome": outcome}) or 0.0

    assert n("scored") == 0 and n("rejected") == 0
    res.count_into(metrics)
    assert n("scored") == 1 and n("rejected") == 1


# -- poison records: each ends in one outcome, the state stays right, the batch goes on ---

def test_an_integer_too_large_for_a_float_is_out_of_range_not_a_crash() -> None:
    p = make()
    huge = b'{"event_id":"e1","entity_id":"u1","ts":%d,"group":"A","amount":1%s,' \
           b'"income":1,"credit_score":600,"channel":"web"}' % (NOW_MS, b"0" * 400)
    big_ts = event(2, 0).replace(b'"ts": 0', b'"ts": 1' + b"0" * 400)
    res = p.process_events([rec(huge, 0), rec(big_ts, 1), rec(event(3, NOW_MS), 2)], NOW_MS)
    reasons = [d["reason"] for d in dead(res)]
    assert reasons == ["out_of_range", "bad_timestamp"]
    assert [s["event_id"] for s in scored(res)] == ["e3"]


def test_overflowing_sums_are_null_on_the_wire_and_later_events_of_the_entity_score() -> None:
    p = make()
    batch = [rec(event(i, NOW_MS + i, amount=1e308), i) for i in range(3)]
    batch.append(rec(event(9, NOW_MS + 9, amount=1.0), 3))
    res = p.process_events(batch, NOW_MS)
    out = scored(res)
    assert [s["event_id"] for s in out] == ["e0", "e1", "e2", "e9"]
    assert out[0]["features"]["amount_sum_1h"] == 1e308
    assert out[1]["features"]["amount_sum_1h"] is None, "inf is null on the wire"
    assert out[3]["features"]["apps_lifetime"] == 4


class _Fussy(Champion):
    """A model that cannot score one particular amount."""

    def score_one(self, features: Any) -> float:
        if features.get("amount_last") == 666.0:
            raise FloatingPointError("cannot score 666")
        return super().score_one(features)

    def score_many(self, rows: Any) -> list[float]:  # a batch fails as a whole
        for row in rows:
            self.score_one(row)
        return super().score_many(rows)


def test_a_record_the_model_cannot_score_is_a_processing_error_and_leaves_no_trace() -> None:
    fussy = _Fussy(Champion.bootstrap(CONFIG.model.spec, CONFIG.features.identity).model,
                   "v-test")
    p = make(champion=fussy)
    batch = [rec(event(1, NOW_MS), 0), rec(event(2, NOW_MS + 1, amount=666.0), 1),
             rec(event(3, NOW_MS + 2, amount=5.0), 2), rec(event(4, NOW_MS + 3, "u2"), 3)]
    res = p.process_events(batch, NOW_MS)
    letters = dead(res)
    assert [d["reason"] for d in letters] == ["processing_error"]
    assert "cannot score 666" in letters[0]["detail"]
    out = {s["event_id"]: s for s in scored(res)}
    assert set(out) == {"e1", "e3", "e4"}
    # e3 is featurised as if e2 had never happened: 2 events, 15.0 in the hour
    assert out["e3"]["features"]["apps_lifetime"] == 2
    assert out["e3"]["features"]["amount_sum_1h"] == 15.0
    assert res.events == {"scored": 3, "rejected": 1}
    later = p.process_events([rec(event(5, NOW_MS + 4), 4)], NOW_MS)
    assert scored(later)[0]["features"]["apps_lifetime"] == 3


def test_an_entity_whose_state_would_pass_its_cap_dead_letters_the_event_not_the_worker(
) -> None:
    config = CONFIG.model_copy(update={"state": CONFIG.state.model_copy(
        update={"max_entity_bytes": 4096})})
    p = make(config)
    batch = [rec(event(i, NOW_MS + i * 1000, amount=float(i)), i) for i in range(400)]
    res = p.process_events(batch, NOW_MS)
    reasons = {d["reason"] for d in dead(res)}
    assert reasons == {"entity_state_limit"}
    assert outcomes(res) == 400 and res.events["scored"] > 0
    entry = decode(p.tables.entities.get(b"u1"), EntityEntry)
    assert len(p.tables.entities.get(b"u1")) <= 4096
    assert entry.last_offset == max(s["source"]["offset"] for s in scored(res))
    # once its sliding windows move on, the entity scores again
    later = NOW_MS + 3 * DAY_MS
    again = p.process_events([rec(event("x", later), 400, ts_ms=later)], later)
    assert scored(again) and not dead(again)


def test_a_second_event_with_an_event_id_already_scored_is_a_dead_letter() -> None:
    p = make()
    res = p.process_events([rec(event(1, NOW_MS), 0), rec(event(1, NOW_MS + 5), 1)], NOW_MS)
    assert [d["reason"] for d in dead(res)] == ["duplicate_event_id"]
    res = p.process_events([rec(event(1, NOW_MS + 9), 2)], NOW_MS)
    assert [d["reason"] for d in dead(res)] == ["duplicate_event_id"]
    assert len(p.tables.pending) == 1


def test_a_redelivered_event_is_not_applied_twice_and_is_resent_identical() -> None:
    p = make()
    first = scored(p.process_events([rec(event(1, NOW_MS), 7), rec(event(2, NOW_MS + 1), 8)],
                                    NOW_MS))
    p.forget_cache()  # as after a restart: state comes from the tables
    again = p.process_events([rec(event(1, NOW_MS), 7), rec(event(2, NOW_MS + 1), 8),
                              rec(event(3, NOW_MS + 2), 9)], NOW_MS + 5_000)
    out = scored(again)
    assert out[:2] == first, "identical records, scored_at included"
    assert out[2]["features"]["apps_lifetime"] == 3
    assert again.redeliveries == 2 and again.events == {"scored": 3}


def test_a_label_delivered_again_after_a_crash_sends_its_example_again() -> None:
    """The example and the pending entry go out in one batch; a kill can land the entry
    (labelled) and lose the example. The redelivered label must send it again; another
    label for the same event stays a duplicate."""
    p = make()
    p.process_events([rec(event(1, NOW_MS), 0)], NOW_MS)
    first = p.process_labels([rec(label(1, NOW_MS + 5), 3, topic="labels")], NOW_MS)
    p.forget_cache()
    again = p.process_labels([rec(label(1, NOW_MS + 5), 3, topic="labels"),
                              rec(label(1, NOW_MS + 9), 4, topic="labels")], NOW_MS + 1_000)
    assert sent(again, CONFIG.topics.training) == sent(first, CONFIG.topics.training)
    assert again.labels == {"joined": 1, "duplicate": 1}


def test_a_redelivered_event_whose_label_joined_sends_its_example_again() -> None:
    p = make()
    p.process_labels([rec(label(1, NOW_MS + 5), 0, topic="labels")], NOW_MS)
    first = p.process_events([rec(event(1, NOW_MS), 7)], NOW_MS)  # joins the held label
    (example,) = sent(first, CONFIG.topics.training)
    p.forget_cache()
    again = p.process_events([rec(event(1, NOW_MS), 7)], NOW_MS + 1_000)
    assert scored(again) == scored(first) and again.redeliveries == 1
    assert sent(again, CONFIG.topics.training) == [example]


def test_an_event_whose_pending_entry_landed_but_not_its_entity_state_is_scored_again(
) -> None:
    """Entities and pending predictions are two changelogs: a kill can land one. The
    redelivered event is the same record (same position), not a second event_id: it is
    applied again and scored, and its joined label's example goes again."""
    p = make()
    p.process_events([rec(event(1, NOW_MS), 7)], NOW_MS)
    p.process_labels([rec(label(1, NOW_MS + 5), 0, topic="labels")], NOW_MS)
    p.tables.entities.delete(b"u1", 0)  # the entity's write was lost
    p.forget_cache()
    again = p.process_events([rec(event(1, NOW_MS), 7)], NOW_MS + 1_000)
    assert not dead(again) and again.events == {"scored": 1}
    assert scored(again)[0]["features"]["apps_lifetime"] == 1
    assert [e["event_id"] for e in sent(again, CONFIG.topics.training)] == ["e1"]
    later = p.process_events([rec(event(1, NOW_MS + 9), 8)], NOW_MS + 2_000)
    assert [d["reason"] for d in dead(later)] == ["duplicate_event_id"]


def test_an_event_accepted_once_is_not_late_when_its_lost_batch_comes_again() -> None:
    """The partition's watermark landed with the later events of the batch; the entity
    state of the first did not. It was accepted once: it is not late now."""
    p = make()
    late_by = CONFIG.event.allowed_lateness_ms + 60_000
    p.process_events([rec(event(1, NOW_MS), 7), rec(event(2, NOW_MS + late_by, "u2"), 8)],
                     NOW_MS)
    p.tables.entities.delete(b"u1", 0)
    p.forget_cache()
    again = p.process_events([rec(event(1, NOW_MS), 7)], NOW_MS + 1_000)
    assert not dead(again) and again.events == {"scored": 1}


def test_an_offset_gap_is_reported_with_the_first_missing_offset() -> None:
    p = make()
    assert p.missing_before(0, 5) is None  # nothing known about the partition yet
    p.process_events([rec(event(1, NOW_MS), 5), rec(b"not json", 6)], NOW_MS)
    assert p.missing_before(0, 7) is None
    assert p.missing_before(0, 9) == 7
    assert p.missing_before(1, 7) is None
    assert p.missing_before(0, 9, labels=True) is None, "labels keep their own offsets"


def test_a_labels_offset_gap_is_reported_too() -> None:
    p = make()
    p.process_labels([rec(label(1, NOW_MS), 3, topic="labels"),
                      rec(b"not json", 4, topic="labels")], NOW_MS)
    assert p.missing_before(0, 5, labels=True) is None
    assert p.missing_before(0, 8, labels=True) == 5
    assert p.missing_before(0, 8) is None, "the events partition is another one"


@pytest.mark.parametrize("late_by_ms", [300_001, 10_000_000])
def test_events_behind_the_partition_watermark_beyond_the_lateness_are_dead_lettered(
    late_by_ms: int,
) -> None:
    p = make()
    res = p.process_events([
        rec(event(1, NOW_MS), 0),
        rec(event(2, NOW_MS - late_by_ms, entity="u2"), 1),
        rec(event(3, NOW_MS - 300_000, entity="u3"), 2),  # exactly the lateness: on time
    ], NOW_MS)
    assert [d["reason"] for d in dead(res)] == ["late"]
    assert [s["event_id"] for s in scored(res)] == ["e1", "e3"]
    assert res.events == {"scored": 2, "late": 1}
    assert p.tables.entities.get(b"u2") is None


# -- labels -----------------------------------------------------------------------------

def test_label_outcomes_joined_duplicate_expired_held_and_invalid() -> None:
    p = make()
    ts = NOW_MS - 10 * DAY_MS
    p.process_events([rec(event(i, ts + i), i) for i in range(3)], NOW_MS)
    res = p.process_labels([
        rec(label(0, ts + 10), 0, topic="labels"),
        rec(label(0, ts + 20), 1, topic="labels"),
        rec(label(1, ts + 2 * DAY_MS), 2, topic="labels"),
        rec(label(9, ts), 3, topic="labels"),
        rec(b'{"event_id": 1', 4, topic="labels"),
        rec(b"[" * 5000 + b"]" * 5000, 5, topic="labels"),
    ], NOW_MS)
    assert res.labels == {"joined": 1, "duplicate": 1, "expired": 1, "invalid": 2}
    assert len(p.tables.held) == 1, "e9 waits for its event"
    assert [d["reason"] for d in dead(res)] == ["malformed_json", "malformed_json"]
    assert all(d["input"] == "label" for d in dead(res))
    (example,) = sent(res, CONFIG.topics.training)
    TrainingExample.model_validate(example)
    assert example["event_id"] == "e0" and example["label"] == 1
    assert example["features"]["apps_lifetime"] == 1 and example["event_ts"] == ts


def test_label_times_are_checked_like_event_times() -> None:
    p = make()
    res = p.process_labels([rec(label(1, NOW_MS + 2 * DAY_MS), 0, topic="labels"),
                            rec(label(2, 5), 1, topic="labels")], NOW_MS)
    assert [d["reason"] for d in dead(res)] == ["bad_timestamp", "bad_timestamp"]
    assert len(p.tables.held) == 0


def test_a_label_that_arrives_before_its_event_is_joined_when_the_event_comes() -> None:
    p = make()
    held = p.process_labels([rec(label(5, NOW_MS), 0, topic="labels")], NOW_MS)
    assert not held.labels and len(p.tables.held) == 1, "not final yet: held"
    res = p.process_events([rec(event(5, NOW_MS - 1000), 0)], NOW_MS)
    assert res.labels == {"joined": 1} and len(p.tables.held) == 0
    assert len(sent(res, CONFIG.topics.training)) == 1


def test_held_labels_are_capped_and_the_overflow_is_dead_lettered() -> None:
    config = CONFIG.model_copy(update={"state": CONFIG.state.model_copy(
        update={"max_held_labels": 3})})
    p = make(config)
    res = p.process_labels([rec(label(i, NOW_MS, entity=f"x{i}"), i, topic="labels")
                            for i in range(5)], NOW_MS)
    assert len(p.tables.held) == 3
    assert [d["reason"] for d in dead(res)] == ["held_labels_full"] * 2
    assert res.labels == {"unmatched": 2}


def test_held_labels_and_pending_predictions_expire_on_event_time_whatever_entity() -> None:
    p = make()
    ttl = CONFIG.model.label_ttl_ms
    lateness = CONFIG.event.allowed_lateness_ms
    p.process_events([rec(event(1, NOW_MS), 0)], NOW_MS)
    p.process_labels([rec(label(f"ghost{i}", NOW_MS, entity=f"nobody{i}"), i, topic="labels")
                      for i in range(50)], NOW_MS)
    assert len(p.tables.held) == 50 and len(p.tables.pending) == 1
    assert not p.expire([0]).labels, "nothing is due yet"
    # time moves on only through another entity's events on the same partition
    later = NOW_MS + ttl + lateness + 1
    p.process_events([rec(event(2, later, "other"), 1, ts_ms=later)], later)
    res = p.expire([0])
    assert res.labels == {"unmatched": 50}
    assert len(p.tables.held) == 0
    assert list(p.tables.pending.store) == [b"e2"], "e1 waited its label TTL and left"
    assert res.predictions_expired == 1
    tombstones = [r for r in res.changelog() if r[2] is None]
    assert len(tombstones) == 51


def test_pending_predictions_are_capped_oldest_first() -> None:
    config = CONFIG.model_copy(update={"state": CONFIG.state.model_copy(
        update={"max_pending": 10})})
    p = make(config)
    res = p.process_events([rec(event(i, NOW_MS + i, f"u{i}"), i) for i in range(25)], NOW_MS)
    assert len(p.tables.pending) == 10 and res.predictions_evicted == 15
    assert b"e24" in p.tables.pending and b"e0" not in p.tables.pending


# -- plain data, never code ---------------------------------------------------------------

class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch /tmp/streambed-pwned",))


def test_a_pickle_in_a_table_is_counted_never_run(tmp_path: Path) -> None:
    marker = Path("/tmp/streambed-pwned")
    marker.unlink(missing_ok=True)
    p = make()
    evil = pickle.dumps(_Boom())
    for table in p.tables.all():
        table.store[b"u1"] = evil
        table.store[b"e1"] = evil
        table.store[partition_key(0)] = evil
    res = p.process_events([rec(event(1, NOW_MS), 0)], NOW_MS)
    labels = p.process_labels([rec(label(1, NOW_MS), 0, topic="labels")], NOW_MS)
    assert not marker.exists()
    # Each value read is counted once, in the result of the batch that read it.
    assert res.decode_errors == {"entities": 1, "pending": 1, "held": 1, "partitions": 1}
    # The label batch finds e1's fresh pending prediction (the evil ones were replaced).
    assert labels.decode_errors == {}
    assert labels.labels == {"joined": 1}
    # Every evil value is treated as absent: the event is scored from a fresh state.
    assert [s["event_id"] for s in scored(res)] == ["e1"]
    assert decode(p.tables.entities.get(b"u1"), EntityEntry).last_offset == 0


def test_table_values_are_versioned_msgpack_arrays() -> None:
    p = make()
    p.process_events([rec(event(1, NOW_MS), 0)], NOW_MS)
    pending = decode(p.tables.pending.get(b"e1"), Pending)
    assert pending.features is not None and pending.features["apps_lifetime"] == 1
    raw = p.tables.pending.get(b"e1")
    assert raw[0] & 0xF0 == 0x90 and raw[1] == PENDING_FORMAT_VERSION, "fixarray, then the format"


def test_text_valued_features_reach_the_model_one_hot_and_the_learner_learns_them() -> None:
    """A first/last/count_distinct over a text field is scored (one hashed indicator per
    value), its record and training example carry the text, and the learner learns it."""
    from governance import LearnerCore

    raw = CONFIG.model_dump(by_alias=True)
    raw["features"] = [*raw["features"]["features"],
                       {"name": "channel_last", "agg": "last", "field": "channel"},
                       {"name": "channel_first", "agg": "first", "field": "channel"},
                       {"name": "channels_1d", "agg": "count_distinct", "field": "channel",
                        "window": {"kind": "sliding", "size": "1d"}}]
    config = Config.model_validate(raw)
    p = make(config)
    res = p.process_events([rec(event(i, NOW_MS + i, channel=c), i)
                            for i, c in enumerate(("web", "branch", "partner"))], NOW_MS)
    out = scored(res)
    assert not dead(res) and len(out) == 3
    assert out[2]["features"]["channel_last"] == "partner"
    assert out[2]["features"]["channel_first"] == "web"
    assert out[2]["features"]["channels_1d"] == 3
    for record in out:
        ScoredRecord.model_validate(record)
    labels = p.process_labels([rec(label(i, NOW_MS + 10), i, topic="labels")
                               for i in range(3)], NOW_MS)
    examples = [TrainingExample.model_validate(e) for e in sent(labels, CONFIG.topics.training)]
    assert len(examples) == 3
    core = LearnerCore(spec=config.model.spec, promotion=config.model.promotion,
                       feature_set=config.features.identity)
    for offset, example in enumerate(examples):
        core.learn(offset, example, now_ms=offset)
    weights = core.challenger.to_artifact()["weights"]
    assert any(name.startswith("channel_last[") for name in weights), sorted(weights)


def test_the_cyclic_gc_does_not_run_inside_a_batch_and_runs_again_after_it() -> None:
    import gc

    p = make()
    collections: list[str] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(phase)

    batch = [rec(event(i, NOW_MS - 1_000 + i, entity=f"u{i % 7}"), i) for i in range(200)]
    thresholds = gc.get_threshold()
    gc.set_threshold(1)  # a collection at nearly every allocation, were it enabled
    gc.callbacks.append(seen)
    work, done = p.events.process_events, p._done
    inside: list[int] = []

    def at_the_start(records: list[InRecord], now_ms: int) -> BatchResult:
        inside.append(len(collections))  # inside the batch
        return work(records, now_ms)

    def at_the_end(res: BatchResult) -> BatchResult:
        inside.append(len(collections))  # still inside the batch
        return done(res)

    p.events.process_events = at_the_start  # type: ignore[method-assign]
    p._done = at_the_end  # type: ignore[method-assign]
    try:
        res = p.process_events(batch, NOW_MS)
        during = inside[1] - inside[0]
        [object() for _ in range(10)]
        after = len(collections)
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*thresholds)
    assert res.events["scored"] == 200
    assert during == 0 and after > 0 and gc.isenabled()
