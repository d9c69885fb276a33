"""Every kind of bad input gets one reason from the bounded set and a detail naming the field."""

from __future__ import annotations

import json

import pytest

from streams.config import load_config
from streams.records import DLQ_REASONS
from streams.validation import EventValidator, Rejection, ValidEvent
from tests.support import REPO

NOW_MS = 1_767_225_600_000
CONFIG = load_config(REPO / "examples" / "quickstart.yaml")
GOOD = {"event_id": "e1", "entity_id": "u1", "ts": NOW_MS, "group": "A", "amount": 120.5,
        "income": 5000.0, "credit_score": 700, "channel": "web"}


def check(obj: object) -> ValidEvent | Rejection:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return EventValidator(CONFIG.event).validate(raw, NOW_MS)


def with_(**changes: object) -> dict:
    return {**GOOD, **changes}


def without(field: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != field}


def test_a_good_event_is_accepted_with_typed_attributes() -> None:
    ok = check(with_(credit_score=700.0, entity_id=42))
    assert isinstance(ok, ValidEvent)
    assert ok.entity_id == "42" and ok.attrs["credit_score"] == 700
    assert ok.attrs["age_band"] is None and ok.attrs["group"] == "A"


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b'{"event_id": "e1", ', "malformed_json", "JSON"),
        (b"\xff\xfe not utf-8", "malformed_json", "JSON"),
        (b'{"amount": NaN}', "malformed_json", "NaN"),
        ([GOOD], "not_an_object", "object"),
        (b"null", "not_an_object", "object"),
        (without("entity_id"), "missing_field", "entity_id"),
        (without("amount"), "missing_field", "amount"),
        (without("ts"), "missing_field", "ts"),
        (with_(amount="12"), "wrong_type", "amount"),
        (with_(credit_score=700.5), "wrong_type", "credit_score"),
        (with_(ts="yesterday"), "wrong_type", "ts"),
        (with_(ts=True), "wrong_type", "ts"),
        (with_(group=3), "wrong_type", "group"),
        (with_(entity_id={"id": 1}), "wrong_type", "entity_id"),
        (with_(colour="red"), "unknown_field", "colour"),
        (with_(channel="fax"), "out_of_range", "channel"),
        (with_(amount=-1.0), "out_of_range", "amount"),
        (with_(credit_score=900), "out_of_range", "credit_score"),
        (with_(entity_id=""), "out_of_range", "entity_id"),
        (with_(ts=NOW_MS + 2 * 86_400_000), "bad_timestamp", "ts"),
        (with_(ts=0), "bad_timestamp", "ts"),
        (with_(ts=10**30), "bad_timestamp", "ts"),
        (with_(note="x" * 70_000), "too_large", "max_payload_bytes"),
    ],
)
def test_bad_input_is_rejected_with_a_reason_naming_the_field(
    payload: object, reason: str, field: str
) -> None:
    result = check(payload)
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert result.reason in DLQ_REASONS
    assert field in result.detail


def test_iso8601_times_need_an_offset() -> None:
    schema = CONFIG.event.model_copy(update={"time_format": "iso8601"})
    v = EventValidator(schema)
    ok = v.validate(json.dumps(with_(ts="2026-01-01T00:00:00.250Z")).encode(), NOW_MS)
    assert isinstance(ok, ValidEvent) and ok.ts_ms == NOW_MS + 250
    naive = v.validate(json.dumps(with_(ts="2026-01-01T00:00:00")).encode(), NOW_MS)
    assert isinstance(naive, Rejection) and naive.reason == "bad_timestamp"


@pytest.mark.parametrize("raw", [b'{"event_id": "\xff\xfe"}', b"\xff", b'{"a": "\xc3"}'])
def test_bytes_that_are_not_utf8_are_malformed_json_not_a_crash(raw: bytes) -> None:
    """Found by the chaos suite: the decoder raised UnicodeDecodeError past the validator."""
    result = check(raw)
    assert isinstance(result, Rejection) and result.reason == "malformed_json", result
