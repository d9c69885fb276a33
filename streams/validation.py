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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

from streams import rejections as why
from streams.config import Attribute, EventSchema
from streams.rejections import Rejection, is_number, unit_hint

__all__ = ["EventValidator", "LabelValidator", "Rejection", "ValidEvent", "ValidLabel",
           "check_time_bounds", "parse_event_time", "parse_json", "unit_hint"]

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Reject(Exception):
    """A refusal of ``kind`` (see :data:`streams.rejections.TEXTS`) raised where found."""

    def __init__(self, kind: str, name: str = "", value: Any = None, **extra: Any) -> None:
        self.rejection = why.rejection(kind, name, value, **extra)
        super().__init__(self.rejection.detail)


def parse_json(raw: bytes) -> Any:
    """Decode JSON bytes; every failure is a :class:`_Reject` (never another exception).

    NaN/Infinity literals are not JSON and are refused; a number too large for a float is
    ``out_of_range``; nesting too deep for the decoder is ``malformed_json``.
    """
    try:
        return _JSON.decode(raw)
    except msgspec.ValidationError as exc:  # a number literal beyond float range
        raise _Reject("number_not_representable", message=str(exc)) from None
    except msgspec.DecodeError as exc:
        raise _Reject("malformed_json", message=str(exc), near=why.near(raw, str(exc))) from None
    except UnicodeDecodeError as exc:  # msgspec raises it for a string that is not UTF-8
        raise _Reject("not_utf8", at=exc.start) from None
    except RecursionError:
        raise _Reject("nested_too_deeply") from None


def _coerce(name: str, attr: Attribute, value: Any) -> Any:
    if attr.type == "float":
        if not is_number(value):
            raise _Reject("expected_number", name, value)
        try:
            value = float(value)
        except OverflowError:
            raise _Reject("float_overflow", name, value) from None
    elif attr.type == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Reject("expected_integer", name, value)
        if abs(value) > _INT64:
            raise _Reject("int_overflow", name, value)
    elif attr.type == "bool":
        if not isinstance(value, bool):
            raise _Reject("expected_bool", name, value)
    elif not isinstance(value, str):
        raise _Reject("expected_string", name, value)
    _check_range(name, attr, value)
    return value


def _check_range(name: str, attr: Attribute, value: Any) -> None:
    if attr.values is not None and value not in attr.values:
        raise _Reject("not_allowed", name, value, values=attr.values)
    if attr.minimum is not None and value < attr.minimum:
        raise _Reject("below_minimum", name, value, minimum=attr.minimum)
    if attr.maximum is not None and value > attr.maximum:
        raise _Reject("above_maximum", name, value, maximum=attr.maximum)


class EventValidator:
    """Turns raw bytes into a :class:`ValidEvent` or a :class:`Rejection`.

    Two paths, one verdict. The fast path decodes into a typed msgspec struct generated
    from the schema (:func:`typed_event`: one C-level pass checks JSON, field names and
    types) and then checks what a type cannot say (id length, times, allowed values,
    bounds). Anything the fast path does not accept goes through the reference path (plain
    JSON, then field by field, in a fixed order), which alone words rejections: the fast
    path only ever accepts, and what it accepts the reference accepts with the same values
    (tests/streams/test_validation.py holds the two to each other on random records).
    """

    def __init__(self, schema: EventSchema) -> None:
        self.schema = schema
        self._known = {schema.id_field, schema.entity_field, schema.time_field,
                       schema.group_field, *schema.attributes}
        self._decoder = msgspec.json.Decoder(typed_event(schema))
        self._names = (schema.group_field, *schema.attributes)
        #: (index, allowed values, minimum, maximum) of each attribute with a range.
        self._ranged = tuple(
            (1 + i, None if a.values is None else frozenset(a.values), a.minimum, a.maximum)
            for i, a in enumerate(schema.attributes.values())
            if a.values is not None or a.minimum is not None or a.maximum is not None)
        self._required = tuple(1 + i for i, attr in enumerate(schema.attributes.values())
                               if attr.required)
        self._ms = schema.time_format == "epoch_ms"

    def validate(self, raw: bytes, now_ms: int) -> ValidEvent | Rejection:
        fast = self._fast(raw, now_ms)
        if fast is not None:
            return fast
        try:
            return self._validate(raw, now_ms)
        except _Reject as r:
            return r.rejection

    def _fast(self, raw: bytes, now_ms: int) -> ValidEvent | None:
        """The event, when the typed decode and the checks after it all pass; else None."""
        s = self.schema
        if len(raw) > s.max_payload_bytes:
            return None
        try:
            event_id, entity_id, ts, *values = msgspec.structs.astuple(
                self._decoder.decode(raw))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        if type(event_id) is int:
            event_id = str(event_id)
            if len(event_id) > 256:
                return None
        if type(entity_id) is int:
            entity_id = str(entity_id)
            if len(entity_id) > 256:
                return None
        if self._ms:
            if ts is None or not (s.min_time_ms <= ts <= now_ms + s.max_future_ms):
                return None
            ts_ms = ts
        else:
            try:
                ts_ms = parse_event_time(ts, s.time_format, s.time_field)
                check_time_bounds(s, s.time_field, ts, ts_ms, now_ms)
            except _Reject:
                return None
        for i in self._required:
            if values[i] is None:
                return None
        try:
            for i, allowed, low, high in self._ranged:
                x = values[i]
                if x is not None and ((allowed is not None and x not in allowed)
                                      or (low is not None and x < low)
                                      or (high is not None and x > high)):
                    return None
        except TypeError:  # a bound that cannot compare with the value: the reference says
            return None
        return ValidEvent(event_id, entity_id, ts_ms, values[0],
                          dict(zip(self._names, values, strict=True)))

    def _validate(self, raw: bytes, now_ms: int) -> ValidEvent:
        """The reference path: every check in order, each failure worded in
        :mod:`streams.rejections`."""
        s = self.schema
        if len(raw) > s.max_payload_bytes:
            raise _Reject("too_large", size=len(raw), limit=s.max_payload_bytes)
        obj = parse_json(raw)
        if not isinstance(obj, dict):
            raise _Reject("not_an_object", value=obj)
        if not s.allow_unknown_fields:
            unknown = sorted(set(obj) - self._known)
            if unknown:
                raise _Reject("unknown_fields", ", ".join(unknown), what="not in the event schema")
        event_id = self._identifier(obj, s.id_field)
        entity_id = self._identifier(obj, s.entity_field)
        ts_ms = self._time(obj, now_ms)
        group = obj.get(s.group_field)
        if group is not None and not isinstance(group, str):
            raise _Reject("group_not_a_string", s.group_field, group)
        attrs: dict[str, Any] = {s.group_field: group}
        for name, attr in s.attributes.items():
            value = obj.get(name)
            if value is None:
                if attr.required:
                    raise _Reject("missing_field", name)
                attrs[name] = None
            else:
                attrs[name] = _coerce(name, attr, value)
        return ValidEvent(event_id, entity_id, ts_ms, group, attrs)

    @staticmethod
    def _identifier(obj: dict[str, Any], name: str) -> str:
        value = obj.get(name)
        if value is None:
            raise _Reject("missing_field", name)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _Reject("not_an_id", name, value)
        value = str(value)
        if not value or len(value) > 256:
            raise _Reject("id_length", name)
        return value

    def _time(self, obj: dict[str, Any], now_ms: int) -> int:
        s = self.schema
        value = obj.get(s.time_field)
        if value is None:
            raise _Reject("missing_field", s.time_field)
        ts_ms = parse_event_time(value, s.time_format, s.time_field)
        check_time_bounds(s, s.time_field, value, ts_ms, now_ms)
        return ts_ms


_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | int
_TYPES: dict[str, Any] = {
    "float": float,
    "int": Annotated[int, msgspec.Meta(ge=-_INT64, le=_INT64)],
    "bool": bool,
    "str": str,
}


def typed_event(schema: EventSchema) -> type[msgspec.Struct]:
    """A msgspec struct for the events a schema accepts, fields in the order id, entity,
    time, group, then the attributes as declared (renamed to the configured names).

    Every field but the id and entity may be absent or null (a required attribute that is
    missing is caught after the decode, so the reference path can say which); a float
    attribute takes integers as floats, as the reference does. Unknown fields fail the
    decode unless the schema allows them.

    >>> from streams.config import EventSchema, Attribute
    >>> Event = typed_event(EventSchema(attributes={"n": Attribute(type="int")}))
    >>> msgspec.json.decode(b'{"event_id":"e","entity_id":7,"ts":5,"n":2}', type=Event)
    Event(f0='e', f1=7, f2=5, f3=None, f4=2)
    """
    time_type: Any = {"epoch_ms": int}.get(schema.time_format, Any)
    fields: list[tuple[str, Any, Any]] = [
        ("f0", _ID, msgspec.NODEFAULT), ("f1", _ID, msgspec.NODEFAULT),
        ("f2", time_type | None, None), ("f3", str | None, None),
        *((f"f{4 + i}", _TYPES[attr.type] | None, None)
          for i, attr in enumerate(schema.attributes.values())),
    ]
    names = [schema.id_field, schema.entity_field, schema.time_field, schema.group_field,
             *schema.attributes]
    return msgspec.defstruct(
        "Event", fields, kw_only=True,
        rename={f"f{i}": name for i, name in enumerate(names)},
        forbid_unknown_fields=not schema.allow_unknown_fields)


def check_time_bounds(schema: EventSchema, field: str, value: Any, ts_ms: int,
                      now_ms: int, time_format: str | None = None) -> None:
    """Refuse absurd times: before ``min_time_ms`` or more than ``max_future`` after receipt.

    ``time_format`` is the format ``value`` was written in (default: the event schema's).
    """
    fmt = time_format or schema.time_format
    if ts_ms < schema.min_time_ms:
        raise _Reject("before_min_time", field, value, time_format=fmt)
    if ts_ms > now_ms + schema.max_future_ms:
        raise _Reject("too_far_ahead", field, value, time_format=fmt)


def parse_event_time(value: Any, time_format: str, field: str = "ts") -> int:
    """An event's time in integer epoch milliseconds UTC, per the configured format."""
    if time_format == "iso8601":
        if not isinstance(value, str):
            raise _Reject("expected_iso", field, value, time_format="iso8601")
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _Reject("not_iso", field, value) from None
        if dt.tzinfo is None:
            raise _Reject("no_utc_offset", field, value)
        return (dt - _EPOCH) // timedelta(milliseconds=1)
    if not is_number(value):
        raise _Reject("expected_time_number", field, value, time_format=time_format)
    if abs(value) > _INT64 // 1000:  # before isfinite: a huge int overflows a float
        raise _Reject("implausible_time", field, value)
    if not math.isfinite(value):
        raise _Reject("not_finite", field, value)
    if time_format == "epoch_ms":
        if isinstance(value, float) and not value.is_integer():
            raise _Reject("epoch_ms_not_whole", field, value)
        return int(value)
    return round(value * 1000)


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
            return r.rejection

    def _validate(self, raw: bytes, now_ms: int) -> ValidLabel:
        if len(raw) > self.schema.max_payload_bytes:
            raise _Reject("too_large", size=len(raw), limit=self.schema.max_payload_bytes)
        obj = parse_json(raw)
        if not isinstance(obj, dict):
            raise _Reject("not_an_object", value=obj)
        unknown = sorted(set(obj) - _LABEL_FIELDS)
        if unknown:
            raise _Reject("unknown_fields", ", ".join(unknown), what="not a label field")
        event_id = EventValidator._identifier(obj, "event_id")
        entity_id = EventValidator._identifier(obj, "entity_id")
        label = obj.get("label")
        if label is None:
            raise _Reject("missing_field", "label")
        if label not in (0, 1) or isinstance(label, float):
            raise _Reject("not_a_label", value=label)
        ts = obj.get("ts")
        if ts is None:
            raise _Reject("missing_field", "ts")
        ts_ms = parse_event_time(ts, "epoch_ms", "ts")
        check_time_bounds(self.schema, "ts", ts, ts_ms, now_ms, "epoch_ms")
        return ValidLabel(event_id, entity_id, int(label), ts_ms)
