"""A shared table of bad (and borderline good) event records, for every validator.

Each row: a name, the raw record as the quickstart config's scorer receives it, and the
reason it must be rejected with (None: accepted). The scorer's validator
(``streams.validation``) and the replay's column-wise one (``streams.replay.checks``) are
both held to this table, and to each other's details (``tests/streams/test_replay_checks.py``).
"""

from __future__ import annotations

import json
from typing import Any

#: Receipt time the table is judged at (2026-01-01T00:00:00Z).
NOW_MS = 1_767_225_600_000

GOOD: dict[str, Any] = {"event_id": "e1", "entity_id": "u1", "ts": NOW_MS, "amount": 12.5,
                        "income": 1000, "credit_score": 700, "channel": "web", "group": "A"}


def _with(**changes: Any) -> bytes:
    event = {**GOOD, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not _DROP}).encode()


class _Drop:
    """Marks a field left out of the record."""


_DROP = _Drop()

BAD_EVENTS: list[tuple[str, bytes, str | None]] = [
    ("good", _with(), None),
    ("good with optional age band", _with(age_band="26-40"), None),
    ("integer id", _with(event_id=17), None),
    ("integral float credit score", _with(credit_score=700.0), None),
    ("integer amount", _with(amount=3), None),
    ("explicit null optional", _with(age_band=None), None),
    ("null group", _with(group=None), None),
    ("truncated JSON", b'{"event_id": "e1", "entity_id"', "malformed_json"),
    ("not UTF-8", b'{"event_id": "\xff"}', "malformed_json"),
    ("NaN literal", _with().replace(b"12.5", b"NaN"), "malformed_json"),
    ("a list", b"[1, 2, 3]", "not_an_object"),
    ("a number", b"42", "not_an_object"),
    ("unknown field", _with(colour="red"), "unknown_field"),
    ("unknown field set to null", _with(colour=None), "unknown_field"),
    ("missing id", _with(event_id=_DROP), "missing_field"),
    ("missing entity", _with(entity_id=_DROP), "missing_field"),
    ("missing time", _with(ts=_DROP), "missing_field"),
    ("missing required amount", _with(amount=_DROP), "missing_field"),
    ("null required channel", _with(channel=None), "missing_field"),
    ("boolean id", _with(event_id=True), "wrong_type"),
    ("float id", _with(entity_id=1.5), "wrong_type"),
    ("empty id", _with(event_id=""), "out_of_range"),
    ("id too long", _with(entity_id="x" * 257), "out_of_range"),
    ("time as text", _with(ts=str(NOW_MS)), "wrong_type"),
    ("time in seconds", _with(ts=NOW_MS // 1000), "bad_timestamp"),
    ("time too far ahead", _with(ts=NOW_MS + 2 * 86_400_000), "bad_timestamp"),
    ("fractional epoch ms", _with(ts=NOW_MS + 0.5), "wrong_type"),
    ("absurd time", _with(ts=10**19), "bad_timestamp"),
    ("amount as text", _with(amount="12.5"), "wrong_type"),
    ("amount a boolean", _with(amount=True), "wrong_type"),
    ("amount below minimum", _with(amount=-0.01), "out_of_range"),
    ("amount too large for a float", _with().replace(b"12.5", b"1e400"), "out_of_range"),
    ("credit score fractional", _with(credit_score=700.5), "wrong_type"),
    ("credit score below minimum", _with(credit_score=299), "out_of_range"),
    ("credit score above maximum", _with(credit_score=851), "out_of_range"),
    ("credit score beyond 64 bits", _with(credit_score=2**70), "out_of_range"),
    ("channel not allowed", _with(channel="phone"), "out_of_range"),
    ("channel a number", _with(channel=3), "wrong_type"),
    ("age band not allowed", _with(age_band="12-17"), "out_of_range"),
    ("group a number", _with(group=1), "wrong_type"),
    ("group an object", _with(group={"a": 1}), "wrong_type"),
    ("amount an object", _with(amount={"v": 1}), "wrong_type"),
    ("too large", _with(padding="x" * 70_000), "too_large"),
]
