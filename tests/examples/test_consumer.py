"""examples/consumer.py: validation against the shipped schema, bounded de-duplication, and
a run against a real broker topic holding duplicates and a bad record."""

from __future__ import annotations

import doctest
import importlib.util
import json
import subprocess
import sys
import uuid
from types import ModuleType
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from tests.support import REPO, produce

EXAMPLE = REPO / "examples" / "consumer.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("streambed_example_consumer", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


consumer = load_example()


def scored(event_id: str, **changes: Any) -> dict[str, Any]:
    record = {
        "event_id": event_id, "entity_id": "e-7", "ts": 1_717_000_000_000, "group": "A",
        "features": {"amount_last": 120.5, "apps_1h": 2, "secs_since_prev": None},
        "score": 0.83, "decision": 1, "model_version": "v3", "feature_set": "fs-1a2b",
        "source": {"topic": "events", "partition": 1, "offset": 42},
        "scored_at": 1_717_000_000_250,
    }
    record.update(changes)
    return record


def raw(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


def test_the_examples_doctests_pass() -> None:
    result = doctest.testmod(consumer, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_valid_records_are_accepted_and_duplicates_dropped_first_one_wins() -> None:
    reader = consumer.ScoredReader()
    first = reader.read(raw(scored("ev-1")), now=0)
    again = reader.read(raw(scored("ev-1", scored_at=1_717_000_009_000, model_version="v4")),
                        now=1)
    other = reader.read(raw(scored("ev-2", group=None, decision=0, score=0.1)), now=2)
    assert (first.status, again.status, other.status) == ("accepted", "duplicate", "accepted")
    assert first.record["model_version"] == "v3"
    assert reader.counts == {"accepted": 2, "duplicate": 1, "invalid": 0}


@pytest.mark.parametrize(("value", "reason"), [
    (b"{not json", "not JSON"),
    (raw({k: v for k, v in scored("x").items() if k != "model_version"}), "model_version"),
    (raw(scored("x", score=1.5)), "score"),
    (raw(scored("x", decision=2)), "decision"),
    (raw(scored("x", source={"topic": "events", "partition": 1})), "source"),
    (raw(scored("x", features={"amount_last": [1, 2]})), "features/amount_last"),
    (raw(scored("x", unexpected=True)), "unexpected"),
])
def test_records_that_break_the_schema_are_invalid_with_the_reason(value: bytes,
                                                                     reason: str) -> None:
    outcome = consumer.ScoredReader().read(value)
    assert outcome.status == "invalid" and reason in outcome.reason, outcome.reason


def test_an_invalid_record_does_not_take_an_event_id() -> None:
    reader = consumer.ScoredReader()
    assert reader.read(raw(scored("ev-1", score=-1))).status == "invalid"
    assert reader.read(raw(scored("ev-1"))).status == "accepted"


def test_memory_is_bounded_by_count_and_age() -> None:
    seen = consumer.SeenIds(max_ids=1000, ttl_seconds=10)
    for i in range(50_000):
        seen.check_and_add(f"ev-{i}", now=i / 1000)
    assert len(seen) == 1000
    assert seen.check_and_add("ev-49999", now=50) is True
    seen.check_and_add("late", now=100)  # everything else is older than 10 s now
    assert len(seen) == 1
    with pytest.raises(ValueError):
        consumer.SeenIds(max_ids=0)


def test_the_shipped_schema_is_the_one_validated_against() -> None:
    schema = json.loads((REPO / "streams" / "schemas" / "scored.schema.json").read_text())
    assert consumer.SCHEMA_PATH == REPO / "streams" / "schemas" / "scored.schema.json"
    assert set(schema["required"]) <= set(scored("x"))


@pytest.mark.kafka
def test_against_a_real_topic_with_duplicates_and_a_bad_record(kafka_bootstrap: str) -> None:
    topic = f"scored.example.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    records = [("e-1", raw(scored("ev-1", entity_id="e-1"))),
               ("e-2", raw(scored("ev-2", entity_id="e-2"))),
               ("e-1", raw(scored("ev-1", entity_id="e-1", scored_at=1_717_000_001_000))),
               ("e-3", b'{"event_id": "ev-3"}'),
               ("e-2", raw(scored("ev-4", entity_id="e-2"))),
               ("e-2", raw(scored("ev-2", entity_id="e-2")))]
    produce(kafka_bootstrap, topic, records)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--bootstrap", kafka_bootstrap, "--topic", topic,
         "--group", f"g-{topic}", "--exit-when-idle", "3"],
        capture_output=True, text=True, timeout=90, cwd=REPO, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    handled = [line.split()[0] for line in proc.stdout.splitlines()]
    assert sorted(handled) == ["ev-1", "ev-2", "ev-4"], proc.stdout
    assert f"invalid record at {topic}[" in proc.stderr
    assert "is a required property" in proc.stderr
    assert "{'accepted': 3, 'duplicate': 2, 'invalid': 1}" in proc.stderr
