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

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import msgspec

from streams.config import Attribute, EventSchema

_JSON = msgspec.json.Decoder()
#: Integers beyond int64 do not survive plain-data encodings (or a float) intact.
_INT64 = 2**63 - 1


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


def parse_json(raw: bytes) -> Any:
    """Decode JSON bytes; every failure is a :class:`_Reject` (never another exception).

    NaN/Infinity literals are not JSON and are refused; a number too large for a float is
    ``out_of_range``; nesting too deep for the decoder is ``malformed_json``.
    """
    try:
        return _JSON.decode(raw)
    except msgspec.ValidationError as exc:  # a number literal beyond float range
        raise _Reject("out_of_range", f"not representable: {exc}") from None
    except msgspec.DecodeError as exc:
        raise _Reject("malformed_json", f"not valid JSON: {exc}{_near(raw, str(exc))}") from None
    except RecursionError:
        raise _Reject("malformed_json", "not valid JSON: nested too deeply") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coerce(name: str, attr: Attribute, value: Any) -> Any:
    if attr.type == "float":
        if not _is_number(value):
            raise _Reject("wrong_type", f"{name}: expected a number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:
            raise _Reject("out_of_range", f"{name}: {value} does not fit a float") from None
    elif attr.type == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Reject("wrong_type", f"{name}: expected an integer, got {_short(value)}")
        if abs(value) > _INT64:
            raise _Reject("out_of_range", f"{name}: {_short(value)} does not fit 64 bits")
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
        obj = parse_json(raw)
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
        check_time_bounds(s, s.time_field, value, ts_ms, now_ms)
        return ts_ms


def check_time_bounds(schema: EventSchema, field: str, value: Any, ts_ms: int,
                      now_ms: int, time_format: str | None = None) -> None:
    """Refuse absurd times: before ``min_time_ms`` or more than ``max_future`` after receipt.

    ``time_format`` is the format ``value`` was written in (default: the event schema's).
    """
    hint = unit_hint(value, time_format or schema.time_format)
    if ts_ms < schema.min_time_ms:
        raise _Reject("bad_timestamp", f"{field}: {_short(value)} is before min_time_ms{hint}")
    if ts_ms > now_ms + schema.max_future_ms:
        raise _Reject("bad_timestamp",
                      f"{field}: {_short(value)} is more than max_future ahead of receipt{hint}")


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
    if not _is_number(value):
        raise _Reject("wrong_type",
                      f"{field}: expected a number ({time_format}), got {_short(value)}"
                      f"{unit_hint(value, time_format)}")
    if abs(value) > _INT64 // 1000:  # before isfinite: a huge int overflows a float
        raise _Reject("bad_timestamp", f"{field}: {_short(value)} is not a plausible time")
    if not math.isfinite(value):
        raise _Reject("wrong_type", f"{field}: expected a finite number, got {value!r}")
    if time_format == "epoch_ms":
        if isinstance(value, float) and not value.is_integer():
            raise _Reject("wrong_type", f"{field}: epoch_ms must be a whole number, got {value!r}")
        return int(value)
    return round(value * 1000)


def _near(raw: bytes, message: str) -> str:
    """The text around the byte a decode error names, so the detail shows what is wrong."""
    found = re.search(r"\(byte (\d+)\)", message)
    if found is None:
        return ""
    at = int(found.group(1))
    return f" near {raw[max(0, at - 12):at + 12].decode('utf-8', 'replace')!r}"


def _short(value: Any, limit: int = 40) -> str:
    """``repr`` cut to ``limit`` characters: details name values, not megabytes of them."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


@dataclass(frozen=True, slots=True)
class ValidLabel:
    event_id: str
    entity_id: str
    label: int
    ts_ms: int


_LABEL_FIELDS = frozenset({"event_id", "entity_id", "label", "ts"})


class LabelValidator:
    """Turns raw label bytes into a :class:`ValidLabel` or a :class:`Rejection`.

    A label is ``{"event_id", "entity_id", "label": 0|1|true|false, "ts": epoch ms}``; its
    time is held to the same bounds as an event's (``min_time_ms``, ``max_future``).

    >>> from streams.config import EventSchema
    >>> v = LabelValidator(EventSchema())
    >>> v.validate(b'{"event_id":"e1","entity_id":"u1","label":1,"ts":1700000000000}',
    ...            1700000000000)
    ValidLabel(event_id='e1', entity_id='u1', label=1, ts_ms=1700000000000)
    >>> v.validate(b'[' * 5000 + b']' * 5000, 0).detail
    'not valid JSON: nested too deeply'
    """

    def __init__(self, schema: EventSchema) -> None:
        self.schema = schema

    def validate(self, raw: bytes, now_ms: int) -> ValidLabel | Rejection:
        try:
            return self._validate(raw, now_ms)
        except _Reject as r:
            return Rejection(r.reason, r.detail)

    def _validate(self, raw: bytes, now_ms: int) -> ValidLabel:
        if len(raw) > self.schema.max_payload_bytes:
            raise _Reject("too_large", f"{len(raw)} bytes exceeds max_payload_bytes="
                                       f"{self.schema.max_payload_bytes}")
        obj = parse_json(raw)
        if not isinstance(obj, dict):
            raise _Reject("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
        unknown = sorted(set(obj) - _LABEL_FIELDS)
        if unknown:
            raise _Reject("unknown_field", f"{', '.join(unknown)}: not a label field")
        event_id = EventValidator._identifier(obj, "event_id")
        entity_id = EventValidator._identifier(obj, "entity_id")
        label = obj.get("label")
        if label is None:
            raise _Reject("missing_field", "label: field required")
        if label not in (0, 1) or isinstance(label, float):
            raise _Reject("wrong_type", f"label: expected 0, 1, true or false, got {_short(label)}")
        ts = obj.get("ts")
        if ts is None:
            raise _Reject("missing_field", "ts: field required")
        ts_ms = parse_event_time(ts, "epoch_ms", "ts")
        check_time_bounds(self.schema, "ts", ts, ts_ms, now_ms, "epoch_ms")
        return ValidLabel(event_id, entity_id, int(label), ts_ms)
