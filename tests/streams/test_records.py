"""Wire records: the shipped JSON Schemas are the ones the models generate."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from streams.config import load_config
from streams.devtools.simulate import SimulationOptions, Simulator
from streams.records import DeadLetter, Label, Source, event_model, json_schemas
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


def test_dead_letter_keeps_any_bytes() -> None:
    src = Source(topic="events", partition=1, offset=7)
    for raw in (b'{"a": 1', b"\xff\x00binary"):
        letter = DeadLetter.of(raw, "malformed_json", "x", src, 0)
        again = DeadLetter.model_validate_json(letter.model_dump_json())
        assert again.original_bytes() == raw and not again.payload_truncated
    big = DeadLetter.of(b"x" * 100, "too_large", "x", src, 0, max_bytes=10)
    assert big.original_bytes() == b"x" * 10 and big.payload_truncated
    assert big.payload_bytes == 100 and len(big.payload_sha256) == 64


@pytest.mark.parametrize("label", [2, "1", None, 0.5])
def test_label_must_be_zero_or_one(label: object) -> None:
    with pytest.raises(ValidationError):
        Label.model_validate({"event_id": "e", "entity_id": "u", "label": label, "ts": 1})
