"""Every kind of bad input gets one reason from the bounded set and a detail naming the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import load_config
from streams.records import DLQ_REASONS
from streams.validation import EventValidator, Rejection, ValidEvent, _Reject
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


# -- the exact words: one table, held by the typed (fast) path and the reference path ----

#: Bad records and the reason and detail each must carry on the DLQ (quickstart schema).
#: Any other validator of events (a vectorised one for replay) can hold itself to this
#: table: the words come from streams.rejections.
EXACT = [
    (b'{"event_id": "e1", ', "malformed_json",
     "not valid JSON: Input data was truncated"),
    (b'[1]', "not_an_object", "expected a JSON object, got list"),
    (b'{"x": 1e400}', "out_of_range", "not representable: Number out of range - at `$[...]`"),
    (without("entity_id"), "missing_field", "entity_id: field required"),
    (without("amount"), "missing_field", "amount: field required"),
    (with_(amount=None), "missing_field", "amount: field required"),
    (without("ts"), "missing_field", "ts: field required"),
    (with_(amount="12"), "wrong_type", "amount: expected a number, got str"),
    (with_(amount=True), "wrong_type", "amount: expected a number, got bool"),
    (with_(credit_score=700.5), "wrong_type", "credit_score: expected an integer, got 700.5"),
    (with_(credit_score=2**64), "out_of_range",
     "credit_score: 18446744073709551616 does not fit 64 bits"),
    (with_(channel=3), "wrong_type", "channel: expected a string, got int"),
    (with_(group=3), "wrong_type", "group: expected a string, got 3"),
    (with_(entity_id=True), "wrong_type",
     "entity_id: expected a string or integer id, got True"),
    (with_(event_id="x" * 257), "out_of_range", "event_id: an id must have 1 to 256 characters"),
    (with_(colour="red", size=1), "unknown_field", "colour, size: not in the event schema"),
    (with_(channel="fax"), "out_of_range",
     "channel: 'fax' is not one of ['web', 'branch', 'partner']"),
    (with_(amount=-1), "out_of_range", "amount: -1.0 is below the minimum 0.0"),
    (with_(credit_score=900), "out_of_range", "credit_score: 900 is above the maximum 850.0"),
    (with_(ts=NOW_MS // 1000), "bad_timestamp",
     "ts: 1767225600 is before min_time_ms (looks like seconds, time_format is epoch_ms)"),
    (with_(ts=NOW_MS + 2 * 86_400_000), "bad_timestamp",
     "ts: 1767398400000 is more than max_future ahead of receipt"),
    (with_(ts=10**30), "bad_timestamp",
     "ts: 1000000000000000000000000000000 is not a plausible time"),
    (with_(ts="2026-01-01"), "wrong_type",
     "ts: expected a number (epoch_ms), got '2026-01-01' (looks like ISO-8601, time_format "
     "is epoch_ms)"),
    (with_(ts=NOW_MS + 0.5), "wrong_type", "ts: epoch_ms must be a whole number, got "
                                          "1767225600000.5"),
    (with_(note="x" * 70_000), "too_large", "70158 bytes exceeds max_payload_bytes=65536"),
]


@pytest.mark.parametrize(("payload", "reason", "detail"), EXACT)
def test_each_bad_record_carries_its_exact_reason_and_detail(
    payload: object, reason: str, detail: str
) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    v = EventValidator(CONFIG.event)
    assert v.validate(raw, NOW_MS) == Rejection(reason, detail)
    assert v._fast(raw, NOW_MS) is None  # the typed path never accepts what is refused


def test_a_good_event_takes_the_typed_path_with_the_reference_values() -> None:
    v = EventValidator(CONFIG.event)
    raw = json.dumps(with_(entity_id=42, credit_score=700, amount=3)).encode()
    fast, ref = v._fast(raw, NOW_MS), v._validate(raw, NOW_MS)
    assert fast == ref and fast is not None
    assert list(fast.attrs) == list(ref.attrs) and type(fast.attrs["amount"]) is float


_FIELDS = ["event_id", "entity_id", "ts", "group", "amount", "income", "credit_score",
           "channel", "age_band", "colour"]
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
    st.sampled_from(["web", "fax", "18-25", "u1", "", "2026-01-01T00:00:00Z"]),
    st.integers(min_value=NOW_MS - 10**9, max_value=NOW_MS + 2 * 86_400_000),
    st.integers(min_value=299, max_value=851), st.lists(st.integers(), max_size=2),
)


@settings(max_examples=600, deadline=None)
@given(base=st.fixed_dictionaries({}, optional={f: st.just(GOOD.get(f)) for f in GOOD}),
       changes=st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=4),
       fmt=st.sampled_from(["epoch_ms", "epoch_seconds", "iso8601"]),
       unknown=st.booleans())
def test_typed_and_reference_paths_agree_on_random_records(
    base: dict, changes: dict, fmt: str, unknown: bool
) -> None:
    """Whatever the record, the validator's verdict is the reference path's (same values,
    same attribute order, or the same reason and detail)."""
    schema = CONFIG.event.model_copy(update={"time_format": fmt,
                                             "allow_unknown_fields": unknown})
    v = EventValidator(schema)
    raw = json.dumps({**base, **changes}).encode()
    try:
        ref: ValidEvent | Rejection = v._validate(raw, NOW_MS)
    except _Reject as r:
        ref = r.rejection
    got = v.validate(raw, NOW_MS)
    assert got == ref
    if isinstance(got, ValidEvent):
        assert list(got.attrs) == list(ref.attrs)  # type: ignore[union-attr]
        assert [type(x) for x in got.attrs.values()] == \
            [type(x) for x in ref.attrs.values()]  # type: ignore[union-attr]


def test_every_refusal_kind_has_a_reason_from_the_bounded_set() -> None:
    from streams.rejections import TEXTS

    assert {reason for reason, _ in TEXTS.values()} <= set(DLQ_REASONS)
