"""Validate raw event bytes against the configured schema: an event, or a reason to reject.

Pure: the caller passes ``now_ms`` (the Kafka record's timestamp online and in replay, so
both judge an absurd future timestamp the same way). Every rejection carries one reason
from the bounded set :data:`streams.records.DLQ_REASONS` and a detail naming the field.

>>> from streams.config import EventSchema, Attribute
>>> schema = EventSchema(attributes={"amount": Attribute(type="float", required=True)})
>>> v = EventValidator(schema)
>>> raw = b'{"event_id":"e1","entity_id":"u1","ts":1700000000000,"amount":3}'
>>> ok = v.validate(raw, 1700000000000)
>>> ok.entity_id, ok.ts_ms, ok.attrs["amount"]
('u1', 1700000000000, 3.0)
>>> v.validate(b'{"event_id":"e1"', 1700000000000).reason
'malformed_json'
>>> v.validate(b'{"event_id":"e1","entity_id":"u1","ts":1700000000000}', 1700000000000).detail
'amount: field required'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from streams.config import Attribute, EventSchema


@dataclass(frozen=True, slots=True)
class ValidEvent:
    event_id: str
    entity_id: str
    ts_ms: int
    group: str | None
    #: Attribute values by name, the group field included (filters may read it).
    attrs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    detail: str


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _no_constants(name: str) -> float:
    raise _Reject("malformed_json", f"non-standard JSON constant {name}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coerce(name: str, attr: Attribute, value: Any) -> Any:
    if attr.type == "float":
        if not _is_number(value):
            raise _Reject("wrong_type", f"{name}: expected a number, got {type(value).__name__}")
        value = float(value)
    elif attr.type == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Reject("wrong_type", f"{name}: expected an integer, got {value!r}")
    elif attr.type == "bool":
        if not isinstance(value, bool):
            raise _Reject("wrong_type", f"{name}: expected true or false, got {value!r}")
    elif not isinstance(value, str):
        raise _Reject("wrong_type", f"{name}: expected a string, got {type(value).__name__}")
    if attr.values is not None and value not in attr.values:
        raise _Reject("out_of_range", f"{name}: {value!r} is not one of {attr.values}")
    if attr.minimum is not None and value < attr.minimum:
        raise _Reject("out_of_range", f"{name}: {value!r} is below the minimum {attr.minimum}")
    if attr.maximum is not None and value > attr.maximum:
        raise _Reject("out_of_range", f"{name}: {value!r} is above the maximum {attr.maximum}")
    return value


class EventValidator:
    """Turns raw bytes into a :class:`ValidEvent` or a :class:`Rejection`."""

    def __init__(self, schema: EventSchema) -> None:
        self.schema = schema
        self._known = {schema.id_field, schema.entity_field, schema.time_field,
                       schema.group_field, *schema.attributes}

    def validate(self, raw: bytes, now_ms: int) -> ValidEvent | Rejection:
        try:
            return self._validate(raw, now_ms)
        except _Reject as r:
            return Rejection(r.reason, r.detail)

    def _validate(self, raw: bytes, now_ms: int) -> ValidEvent:
        s = self.schema
        if len(raw) > s.max_payload_bytes:
            raise _Reject("too_large",
                          f"{len(raw)} bytes exceeds max_payload_bytes={s.max_payload_bytes}")
        try:
            obj = json.loads(raw, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise _Reject("malformed_json", f"not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise _Reject("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
        if not s.allow_unknown_fields:
            unknown = sorted(set(obj) - self._known)
            if unknown:
                raise _Reject("unknown_field", f"{', '.join(unknown)}: not in the event schema")
        event_id = self._identifier(obj, s.id_field)
        entity_id = self._identifier(obj, s.entity_field)
        ts_ms = self._time(obj, now_ms)
        group = obj.get(s.group_field)
        if group is not None and not isinstance(group, str):
            raise _Reject("wrong_type", f"{s.group_field}: expected a string, got {group!r}")
        attrs: dict[str, Any] = {s.group_field: group}
        for name, attr in s.attributes.items():
            value = obj.get(name)
            if value is None:
                if attr.required:
                    raise _Reject("missing_field", f"{name}: field required")
                attrs[name] = None
            else:
                attrs[name] = _coerce(name, attr, value)
        return ValidEvent(event_id, entity_id, ts_ms, group, attrs)

    @staticmethod
    def _identifier(obj: dict[str, Any], name: str) -> str:
        value = obj.get(name)
        if value is None:
            raise _Reject("missing_field", f"{name}: field required")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _Reject("wrong_type", f"{name}: expected a string or integer id, got {value!r}")
        value = str(value)
        if not value or len(value) > 256:
            raise _Reject("out_of_range", f"{name}: an id must have 1 to 256 characters")
        return value

    def _time(self, obj: dict[str, Any], now_ms: int) -> int:
        s = self.schema
        value = obj.get(s.time_field)
        if value is None:
            raise _Reject("missing_field", f"{s.time_field}: field required")
        ts_ms = parse_event_time(value, s.time_format, s.time_field)
        if ts_ms < s.min_time_ms:
            raise _Reject("bad_timestamp", f"{s.time_field}: {value!r} is before min_time_ms"
                                           f"{unit_hint(value, s.time_format)}")
        if ts_ms > now_ms + s.max_future_ms:
            raise _Reject("bad_timestamp",
                          f"{s.time_field}: {value!r} is more than max_future ahead of receipt"
                          f"{unit_hint(value, s.time_format)}")
        return ts_ms


#: Epoch numbers by magnitude: from 1e8 (1973 in seconds) each unit is 1000 times the last.
_UNITS = ((1e8, "seconds"), (1e11, "milliseconds"), (1e14, "microseconds"),
          (1e17, "nanoseconds"), (1e20, None))
_FORMAT_UNIT = {"epoch_seconds": "seconds", "epoch_ms": "milliseconds"}


def unit_hint(value: Any, time_format: str) -> str:
    """``" (looks like seconds, time_format is epoch_ms)"`` when a time looks written in
    another unit or format than the configured one; ``""`` otherwise.

    >>> unit_hint(1767225600, "epoch_ms")
    ' (looks like seconds, time_format is epoch_ms)'
    >>> unit_hint("2026-01-01T00:00:00", "epoch_ms")
    ' (looks like ISO-8601, time_format is epoch_ms)'
    >>> unit_hint(1767225600000, "epoch_ms")
    ''
    """
    looks = None
    if _is_number(value) and math.isfinite(value):
        for (low, unit), (high, _) in pairwise(_UNITS):
            if low <= abs(value) < high:
                looks = f"epoch {unit}" if time_format == "iso8601" else unit
        if looks == _FORMAT_UNIT.get(time_format):
            looks = None
    elif isinstance(value, str) and time_format != "iso8601":
        text = value.strip()
        if text.lstrip("-").replace(".", "", 1).isdigit():
            looks = "a number written as text"
        else:
            try:
                datetime.fromisoformat(text.replace("Z", "+00:00"))
                looks = "ISO-8601"
            except ValueError:
                looks = None
    return f" (looks like {looks}, time_format is {time_format})" if looks else ""


def parse_event_time(value: Any, time_format: str, field: str = "ts") -> int:
    """An event's time in integer epoch milliseconds UTC, per the configured format."""
    if time_format == "iso8601":
        if not isinstance(value, str):
            raise _Reject("wrong_type", f"{field}: expected an ISO-8601 string, got {value!r}"
                                        f"{unit_hint(value, time_format)}")
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _Reject("bad_timestamp", f"{field}: {value!r} is not ISO-8601") from None
        if dt.tzinfo is None:
            raise _Reject("bad_timestamp",
                          f"{field}: {value!r} has no UTC offset (add Z or +HH:MM)")
        return (dt - _EPOCH) // timedelta(milliseconds=1)
    if not _is_number(value) or not math.isfinite(value):
        raise _Reject("wrong_type", f"{field}: expected a number ({time_format}), got {value!r}"
                                    f"{unit_hint(value, time_format)}")
    if time_format == "epoch_ms":
        if isinstance(value, float) and not value.is_integer():
            raise _Reject("wrong_type", f"{field}: epoch_ms must be a whole number, got {value!r}")
        return int(value)
    return round(value * 1000)
