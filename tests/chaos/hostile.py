"""Hostile input for the chaos suite: every kind of bad record the service must survive.

Each payload is ``(key, bytes, kind)``. Event kinds end in a dead letter (the reason the
scorer gives is checked only loosely: the point is one outcome each, no crash); a few
kinds are valid events that poison arithmetic (huge amounts) and must be scored.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

#: kind -> whether the scorer scores it (True) or dead-letters it (False)
EVENT_KINDS: dict[str, bool] = {
    "malformed_json": False,
    "not_an_object": False,
    "missing_field": False,
    "unknown_field": False,
    "wrong_type": False,
    "nan_literal": False,
    "integer_beyond_float": False,
    "float_beyond_range": False,
    "deep_nesting": False,
    "nul_bytes": False,
    "invalid_utf8": False,
    "too_large": False,
    "bad_timestamp": False,
    "future_timestamp": False,
    "out_of_range": False,
    "huge_amount": True,       # 1e308: sums overflow to inf, null on the wire
    "empty": False,
}
LABEL_KINDS = ("deep_label", "label_future", "label_unknown_entity", "label_malformed",
               "label_not_binary")


def _valid(i: int, ts: int, entity: str) -> dict[str, Any]:
    return {"event_id": f"h{i}", "entity_id": entity, "ts": ts, "group": "A",
            "amount": 10.0, "income": 1000.0, "credit_score": 600, "channel": "web"}


def hostile_event(kind: str, i: int, ts: int, rng: random.Random) -> tuple[str, bytes]:
    entity = f"hostile{rng.randrange(50)}"
    body = _valid(i, ts, entity)
    raw: bytes
    if kind == "malformed_json":
        raw = json.dumps(body).encode()[: rng.randrange(1, 40)]
    elif kind == "not_an_object":
        raw = json.dumps([body]).encode()
    elif kind == "missing_field":
        body.pop("amount")
        raw = json.dumps(body).encode()
    elif kind == "unknown_field":
        body["surprise"] = 1
        raw = json.dumps(body).encode()
    elif kind == "wrong_type":
        body["credit_score"] = "six hundred"
        raw = json.dumps(body).encode()
    elif kind == "nan_literal":
        raw = json.dumps(body).encode().replace(b"10.0", b"NaN")
    elif kind == "integer_beyond_float":
        raw = json.dumps(body).encode().replace(b"10.0", b"1" + b"0" * 400)
    elif kind == "float_beyond_range":
        raw = json.dumps(body).encode().replace(b"10.0", b"1e400")
    elif kind == "deep_nesting":
        raw = b'{"event_id": "x", "amount": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    elif kind == "nul_bytes":
        raw = b"\x00" * rng.randrange(1, 5000)
    elif kind == "invalid_utf8":
        raw = b'{"event_id": "\xff\xfe", "entity_id": "x"}'
    elif kind == "too_large":
        body["channel"] = "x" * 70_000
        raw = json.dumps(body).encode()
    elif kind == "bad_timestamp":
        body["ts"] = "tomorrow"
        raw = json.dumps(body).encode()
    elif kind == "future_timestamp":
        body["ts"] = ts + 400 * 86_400_000
        raw = json.dumps(body).encode()
    elif kind == "out_of_range":
        body["credit_score"] = 10_000
        raw = json.dumps(body).encode()
    elif kind == "huge_amount":
        body["amount"] = 1e308
        raw = json.dumps(body).encode()
    elif kind == "empty":
        raw = b""
    else:
        raise ValueError(kind)
    return entity, raw


def hostile_label(kind: str, i: int, ts: int, rng: random.Random) -> tuple[str, bytes]:
    entity = f"ghost{rng.randrange(10_000)}"
    if kind == "deep_label":
        return entity, b'{"event_id": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    if kind == "label_future":  # 11 days after it is produced: beyond max_future
        future = time.time_ns() // 1_000_000 + 11 * 86_400_000
        return entity, json.dumps({"event_id": f"g{i}", "entity_id": entity, "label": 1,
                                   "ts": future}).encode()
    if kind == "label_unknown_entity":
        return entity, json.dumps({"event_id": f"g{i}", "entity_id": entity, "label": 0,
                                   "ts": ts}).encode()
    if kind == "label_malformed":
        return entity, b'{"event_id": "g'
    if kind == "label_not_binary":
        return entity, json.dumps({"event_id": f"g{i}", "entity_id": entity, "label": 7,
                                   "ts": ts}).encode()
    raise ValueError(kind)


def hostile_stream(n_events: int, n_labels: int, ts: int, seed: int,
                   ) -> Iterator[tuple[str, str, bytes, str]]:
    """``(input, key, value, kind)`` with every kind represented, in a random order."""
    rng = random.Random(seed)
    kinds = list(EVENT_KINDS)
    items: list[tuple[str, str, bytes, str]] = []
    for i in range(n_events):
        kind = kinds[i % len(kinds)]
        key, raw = hostile_event(kind, i, ts + i, rng)
        items.append(("event", key, raw, kind))
    for i in range(n_labels):
        kind = LABEL_KINDS[i % len(LABEL_KINDS)]
        key, raw = hostile_label(kind, i, ts, rng)
        items.append(("label", key, raw, kind))
    rng.shuffle(items)
    yield from items
