"""Wire records: the shipped JSON Schemas are the ones the models generate."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from streams.records import DeadLetter, Label, Source, json_schemas
from tests.support import REPO


def test_shipped_json_schemas_match_the_models() -> None:
    shipped = REPO / "streams" / "schemas"
    for name, schema in json_schemas().items():
        path = shipped / f"{name}.schema.json"
        assert path.exists(), f"run `make schemas`: {path} is missing"
        assert json.loads(path.read_text()) == schema, f"run `make schemas`: {path} is stale"


def test_dead_letter_keeps_any_bytes() -> None:
    src = Source(topic="events", partition=1, offset=7)
    for raw in (b'{"a": 1', b"\xff\x00binary"):
        letter = DeadLetter.of(raw, "malformed_json", "x", src, 0)
        again = DeadLetter.model_validate_json(letter.model_dump_json())
        assert again.original_bytes() == raw


@pytest.mark.parametrize("label", [2, "1", None, 0.5])
def test_label_must_be_zero_or_one(label: object) -> None:
    with pytest.raises(ValidationError):
        Label.model_validate({"event_id": "e", "entity_id": "u", "label": label, "ts": 1})
