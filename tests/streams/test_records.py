"""Wire records: the shipped JSON Schemas are the ones the models generate."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.records import (
    DeadLetter,
    Label,
    dead_letter_bytes,
    dead_letter_overhead_bytes,
    event_model,
    json_schemas,
)
from streams.validation import EventValidator, ValidEvent
from tests.support import REPO

CONFIG = load_config(REPO / "examples" / "quickstart.yaml")


def test_event_schema_model_and_validator_agree_on_structure() -> None:
    model, validator = event_model(CONFIG.event), EventValidator(CONFIG.event)
    opts = SimulationOptions(count=600, seed=8, malformed_ratio=0.3)
    checked = 0
    for rec in Simulator(CONFIG, opts).records():
        if rec.kind != "event":
            continue
        verdict = validator.validate(rec.value, rec.ts_ms)
        if not isinstance(verdict, ValidEvent) and verdict.reason == "bad_timestamp":
            continue  # a time judged against the receipt time: not a structural rule
        try:
            model.model_validate_json(rec.value)
            structural_ok = True
        except ValidationError:
            structural_ok = False
        assert structural_ok == isinstance(verdict, ValidEvent), (rec.value, verdict)
        checked += 1
    assert checked > 500


def test_shipped_json_schemas_match_the_models() -> None:
    shipped = REPO / "streams" / "schemas"
    for name, schema in json_schemas(CONFIG.event).items():
        path = shipped / f"{name}.schema.json"
        assert path.exists(), f"run `make schemas`: {path} is missing"
        assert json.loads(path.read_text()) == schema, f"run `make schemas`: {path} is stale"


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=3000), limit=st.integers(min_value=1, max_value=4000),
       detail=st.text(max_size=300))
def test_dead_letter_keeps_any_bytes_within_its_size_bound(raw: bytes, limit: int,
                                                           detail: str) -> None:
    encoded = dead_letter_bytes(raw, "malformed_json", detail, ("events", 1, 7), 0, limit)
    letter = DeadLetter.model_validate_json(encoded)
    assert letter.original_bytes() == raw[:limit]
    assert letter.payload_truncated == (len(raw) > limit) and letter.payload_bytes == len(raw)
    assert letter.payload_sha256 == hashlib.sha256(raw).hexdigest()
    assert len(encoded) <= dead_letter_overhead_bytes(limit) + 6 * len(detail)


def test_a_payload_of_nul_bytes_makes_a_dead_letter_a_third_larger_not_six_times() -> None:
    raw = b"\x00" * 65_000
    encoded = dead_letter_bytes(raw, "malformed_json", "x", ("events", 0, 0), 0, 65_536)
    assert len(encoded) < 1.34 * len(raw) + 1_000


@pytest.mark.parametrize("label", [2, "1", None, 0.5])
def test_label_must_be_zero_or_one(label: object) -> None:
    with pytest.raises(ValidationError):
        Label.model_validate({"event_id": "e", "entity_id": "u", "label": label, "ts": 1})


def test_the_metric_knows_every_dead_letter_reason() -> None:
    from monitors.metrics import REJECTION_REASONS
    from streams.records import DLQ_REASONS

    assert set(REJECTION_REASONS) == set(DLQ_REASONS)


def test_the_hot_path_scored_record_has_the_wire_model_fields_in_order() -> None:
    from streams.records import ScoredRecord, ScoredWire, scored_record_bytes

    assert ScoredWire.__struct_fields__ == tuple(ScoredRecord.model_fields)
    raw = scored_record_bytes("e1", "u1", 5, "A", {"n": 1, "x": None, "t": "web"}, 0.25, 0,
                              "v1", "fs", ("events", 3, 7), 9)
    record = ScoredRecord.model_validate_json(raw)
    assert json.loads(raw) == record.model_dump(mode="json")
